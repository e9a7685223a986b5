//! `topiclog dump`: Kafka's `kafka-dump-log --files`, over `.log`, `.index` and `.timeindex`
//! segment files (topiclog's or a Kafka broker's: the layouts are Kafka's).
//!
//! Everything is decoded by the library (`topiclog::segment`); this module walks the files, says
//! what it finds and never trusts a length it has not checked against what the file holds.

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use topiclog::fs::StdFs;
use topiclog::segment::{
    parse_segment_file_name, BatchHeader, OffsetIndex, RecordBatch, SegmentFileKind, TimeIndex,
};
use topiclog::{Bytes, Compression};

use crate::line::{BatchLine, HeaderContent, Line, Out, Printed, RecordContent, RecordLine};
use crate::{Failure, Verdict};

/// Bytes of a batch's base offset and length fields: what a walk needs to step to the next batch
/// (Kafka's `LOG_OVERHEAD`).
const LOG_OVERHEAD: usize = 12;

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Segment files: `<base offset>.log`, `.index` or `.timeindex`, the base offset in 20
    /// digits as Kafka and topiclog name them.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Print every record of each batch too (Kafka: --deep-iteration).
    #[arg(long, visible_alias = "deep-iteration")]
    deep: bool,

    /// Print each record's key, value and headers: as text when valid UTF-8 without control
    /// characters, else as hex.
    /// Implies --deep (Kafka: --print-data-log).
    #[arg(long, visible_alias = "print-data-log")]
    print_data: bool,

    /// With --print-data: print keys, values and header values as hex, even valid UTF-8.
    #[arg(long, requires = "print_data")]
    hex: bool,

    /// For `.index` and `.timeindex` files: check every entry against the sibling `.log` and
    /// report the mismatches (Kafka: --verify-index-only). `.log` files are dumped as usual.
    #[arg(long, visible_alias = "verify-index-only")]
    verify_index: bool,

    /// Print one JSON object per line (JSON Lines), its `type` naming what it describes.
    #[arg(long)]
    json: bool,
}

/// A file on the command line, its name checked.
struct SegmentFile {
    path: PathBuf,
    /// The path as given, for the output.
    name: String,
    base_offset: u64,
    kind: SegmentFileKind,
}

impl SegmentFile {
    fn new(path: &Path) -> Result<SegmentFile, Failure> {
        let name = path.display().to_string();
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let extension = file_name.split_once('.').map_or("", |(_, ext)| ext);
        if !matches!(extension, "log" | "index" | "timeindex") {
            return Err(Failure::Usage(format!(
                "{name}: unknown extension: dump reads .log, .index and .timeindex segment files"
            )));
        }
        let Some((base_offset, kind)) = parse_segment_file_name(file_name) else {
            return Err(Failure::Usage(format!(
                "{name}: not a segment file name: expected the base offset in 20 digits, as in \
                 00000000000000000000.{extension}"
            )));
        };
        if !path.is_file() {
            return Err(Failure::Usage(format!("{name}: no such file")));
        }
        Ok(SegmentFile {
            path: path.to_owned(),
            name,
            base_offset,
            kind,
        })
    }

    fn sibling_log(&self) -> PathBuf {
        self.path.with_extension("log")
    }
}

/// Run `dump`: every file's name is checked before anything is printed.
pub fn run(args: &DumpArgs) -> Result<Verdict, Failure> {
    let files = args
        .files
        .iter()
        .map(|p| SegmentFile::new(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Out::new(BufWriter::new(io::stdout().lock()), args.json);
    let mut verdict = Verdict::Sound;
    for file in &files {
        out.emit(&Line::File {
            file: file.name.clone(),
            kind: file.kind.extension(),
            base_offset: file.base_offset,
        })?;
        let found = match file.kind {
            SegmentFileKind::Log => dump_log(file, args, &mut out)?,
            SegmentFileKind::OffsetIndex => dump_offset_index(file, args, &mut out)?,
            SegmentFileKind::TimeIndex => dump_time_index(file, args, &mut out)?,
            _ => unreachable_kind(file)?,
        };
        if found == Verdict::Damaged {
            verdict = Verdict::Damaged;
        }
    }
    out.flush()?;
    Ok(verdict)
}

/// `SegmentFileKind` is non-exhaustive: a kind added to the library is refused until `dump`
/// learns it.
fn unreachable_kind(file: &SegmentFile) -> Result<Verdict, Failure> {
    Err(Failure::Usage(format!(
        "{}: dump does not read this kind of segment file",
        file.name
    )))
}

fn read_file(path: &Path, name: &str) -> Result<Bytes, Failure> {
    std::fs::read(path)
        .map(Bytes::from)
        .map_err(|e| Failure::Usage(format!("{name}: cannot read: {e}")))
}

/// One batch header found walking a `.log`, and where.
struct Walked {
    position: u64,
    header: BatchHeader,
    /// The bytes of the whole batch; `None` when the file ends inside it.
    bytes: Option<Bytes>,
}

/// How a walk over a `.log` ended.
enum WalkEnd {
    /// At the end of the file.
    Clean,
    /// At a zero-filled tail (preallocated space): `bytes` of zeros from `position`.
    ZeroTail { position: u64, bytes: u64 },
    /// At damage: no batch can be read from `position` on.
    Damage { position: u64, message: String },
}

/// Walk the batches of `log` by their length fields, as Kafka's `FileLogInputStream` does: each
/// header parsed (structure only), each batch's bytes handed over whole, or `None` when torn.
/// A batch whose CRC fails is still stepped over by its length, so later batches are seen.
fn walk(log: &Bytes, mut each: impl FnMut(Walked) -> io::Result<()>) -> io::Result<WalkEnd> {
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
                return Ok(WalkEnd::Damage { position, message });
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
            });
        }
        pos += size;
    }
    Ok(WalkEnd::Clean)
}

fn batch_line(w: &Walked) -> BatchLine {
    let h = &w.header;
    let crc_valid = w
        .bytes
        .as_ref()
        .map(|b| BatchHeader::computed_crc(b) == Some(h.crc));
    BatchLine {
        base_offset: h.base_offset,
        last_offset: h.last_offset(),
        count: h.record_count,
        position: w.position,
        size: h.total_len() as u64,
        magic: h.magic,
        crc: h.crc,
        crc_valid,
        compression: Compression::from_attributes(h.attributes).map_or("unknown", |c| c.name()),
        timestamp_type: if h.is_log_append_time() {
            "log_append_time"
        } else {
            "create_time"
        },
        base_timestamp: h.base_timestamp,
        max_timestamp: h.max_timestamp,
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        base_sequence: h.base_sequence,
        last_sequence: sequence_at(h, h.last_offset()),
        partition_leader_epoch: h.partition_leader_epoch,
        is_transactional: h.is_transactional(),
        is_control: h.is_control(),
        delete_horizon_ms: h.delete_horizon(),
    }
}

/// The producer sequence of the record at `offset` (Kafka's `DefaultRecordBatch.lastSequence`
/// rule: sequences wrap at `i32::MAX`), -1 without a producer.
fn sequence_at(h: &BatchHeader, offset: u64) -> i32 {
    if h.base_sequence < 0 {
        return -1;
    }
    let delta = offset.saturating_sub(h.base_offset) as i64;
    ((i64::from(h.base_sequence) + delta) % (i64::from(i32::MAX) + 1)) as i32
}

fn size_of(bytes: Option<&[u8]>) -> i64 {
    bytes.map_or(-1, |b| b.len() as i64)
}

fn dump_log<W: Write>(
    file: &SegmentFile,
    args: &DumpArgs,
    out: &mut Out<W>,
) -> Result<Verdict, Failure> {
    let log = read_file(&file.path, &file.name)?;
    let deep = args.deep || args.print_data;
    let mut verdict = Verdict::Sound;
    let error = |position: u64, message: String| Line::Error {
        file: file.name.clone(),
        position,
        message,
    };
    let end = walk(&log, |w| {
        let line = batch_line(&w);
        let crc_valid = line.crc_valid;
        out.emit(&Line::Batch {
            file: file.name.clone(),
            batch: line,
        })?;
        let bytes = match w.bytes {
            // Torn: `walk` reports it once it returns.
            None => return Ok(()),
            Some(bytes) if crc_valid == Some(true) => bytes,
            Some(bytes) => {
                verdict = Verdict::Damaged;
                let computed = BatchHeader::computed_crc(&bytes).unwrap_or_default();
                return out.emit(&error(
                    w.position,
                    format!(
                        "CRC mismatch: the batch stores {}, its bytes give {computed}",
                        w.header.crc
                    ),
                ));
            }
        };
        // The CRC verifies: decoding checks the rest (codec, record framing).
        let batch = match RecordBatch::decode(bytes) {
            Ok(batch) => batch,
            Err((at, reason)) => {
                verdict = Verdict::Damaged;
                return out.emit(&error(w.position + at as u64, reason.to_owned()));
            }
        };
        if !deep {
            return Ok(());
        }
        for record in batch.iter() {
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    verdict = Verdict::Damaged;
                    return out.emit(&error(w.position, e.to_string()));
                }
            };
            let data = args.print_data.then(|| RecordContent {
                key: record.key().map(|k| Printed::new(k, args.hex)),
                value: record.value().map(|v| Printed::new(v, args.hex)),
                headers: record
                    .headers()
                    .map(|h| HeaderContent {
                        key: h.key.to_owned(),
                        value: h.value.map(|v| Printed::new(v, args.hex)),
                    })
                    .collect(),
            });
            out.emit(&Line::Record {
                file: file.name.clone(),
                record: RecordLine {
                    offset: record.offset(),
                    timestamp: record.timestamp(),
                    key_size: size_of(record.key()),
                    value_size: size_of(record.value()),
                    header_count: record.header_count(),
                    sequence: sequence_at(batch.header(), record.offset()),
                    data,
                },
            })?;
        }
        Ok(())
    })?;
    match end {
        WalkEnd::Clean => {}
        WalkEnd::ZeroTail { position, bytes } => out.emit(&Line::Note {
            file: file.name.clone(),
            message: format!(
                "{bytes} zero bytes from position {position} to the end (preallocated space, \
                 not data)"
            ),
        })?,
        WalkEnd::Damage { position, message } => {
            verdict = Verdict::Damaged;
            out.emit(&error(position, message))?;
        }
    }
    Ok(verdict)
}

/// An index file's length when it is not a whole number of entries (damage).
fn partial_entry(file: &SegmentFile, entry_len: u64) -> Result<Option<u64>, Failure> {
    let len = std::fs::metadata(&file.path)
        .map_err(|e| Failure::Usage(format!("{}: cannot read: {e}", file.name)))?
        .len();
    Ok((len % entry_len != 0).then_some(len))
}

/// What `--verify-index` checks entries against: every batch header of the sibling `.log`.
struct LogBatches {
    /// Batch headers by their position.
    by_position: HashMap<u64, BatchHeader>,
    /// For each batch's last offset: the largest timestamp of the segment up to that batch.
    max_timestamp_through: HashMap<u64, i64>,
}

impl LogBatches {
    fn read(file: &SegmentFile) -> Result<LogBatches, Failure> {
        let path = file.sibling_log();
        let name = path.display().to_string();
        if !path.is_file() {
            return Err(Failure::Usage(format!(
                "{}: --verify-index needs the segment's log, {name}, which is missing",
                file.name
            )));
        }
        let log = read_file(&path, &name)?;
        let mut batches = LogBatches {
            by_position: HashMap::new(),
            max_timestamp_through: HashMap::new(),
        };
        let mut max_timestamp = i64::MIN;
        // Damage in the log is `dump`'s to report on the log; entries pointing past it mismatch.
        walk(&log, |w| {
            if w.bytes.is_some() {
                max_timestamp = max_timestamp.max(w.header.max_timestamp);
                batches
                    .max_timestamp_through
                    .insert(w.header.last_offset(), max_timestamp);
                batches.by_position.insert(w.position, w.header);
            }
            Ok(())
        })
        .map_err(|e| Failure::Usage(format!("{name}: cannot read: {e}")))?;
        Ok(batches)
    }
}

fn dump_offset_index<W: Write>(
    file: &SegmentFile,
    args: &DumpArgs,
    out: &mut Out<W>,
) -> Result<Verdict, Failure> {
    let index = OffsetIndex::map(Arc::new(StdFs), &file.path, file.base_offset, 0)
        .map_err(|e| Failure::Usage(format!("{}: cannot read: {e}", file.name)))?;
    let log = args
        .verify_index
        .then(|| LogBatches::read(file))
        .transpose()?;
    let mut verdict = Verdict::Sound;
    let mut mismatches = 0;
    let mut entries = 0;
    let mut previous: Option<(u64, u32)> = None;
    for i in 0..index.len() {
        let Some(entry) = index.entry(i) else {
            verdict = Verdict::Damaged;
            out.emit(&Line::Error {
                file: file.name.clone(),
                position: (i * 8) as u64,
                message: "the entry's offset overflows the base offset".into(),
            })?;
            continue;
        };
        // Kafka preallocates an active segment's index: past the entries, zeros (relative offset
        // 0 after the first entry, Kafka's `DumpLogSegments` rule).
        if i > 0 && entry.offset == file.base_offset && entry.position == 0 {
            out.emit(&Line::Note {
                file: file.name.clone(),
                message: format!(
                    "{} zero-filled entries from entry {i} (preallocated space, not entries)",
                    index.len() - i
                ),
            })?;
            break;
        }
        entries += 1;
        out.emit(&Line::IndexEntry {
            file: file.name.clone(),
            offset: entry.offset,
            position: entry.position,
        })?;
        let Some(log) = &log else { continue };
        let problem = match log.by_position.get(&u64::from(entry.position)) {
            _ if previous.is_some_and(|(o, p)| entry.offset <= o || entry.position <= p) => {
                Some("entries must grow in offset and position".to_owned())
            }
            None => Some(format!(
                "no batch of the log starts at position {}",
                entry.position
            )),
            // Kafka's rule: an entry names the last offset of the batch at its position.
            Some(h) if h.last_offset() != entry.offset => Some(format!(
                "the batch at position {} holds offsets {} to {}: the entry should name {}",
                entry.position,
                h.base_offset,
                h.last_offset(),
                h.last_offset()
            )),
            Some(_) => None,
        };
        previous = Some((entry.offset, entry.position));
        if let Some(message) = problem {
            mismatches += 1;
            out.emit(&Line::IndexMismatch {
                file: file.name.clone(),
                entry: i,
                offset: entry.offset,
                position: Some(entry.position),
                timestamp: None,
                message,
            })?;
        }
    }
    if let Some(len) = partial_entry(file, 8)? {
        verdict = Verdict::Damaged;
        out.emit(&Line::Error {
            file: file.name.clone(),
            position: len / 8 * 8,
            message: format!("the file ends inside an entry ({len} bytes, entries are 8)"),
        })?;
    }
    finish_verify(file, log.is_some(), entries, mismatches, verdict, out)
}

fn dump_time_index<W: Write>(
    file: &SegmentFile,
    args: &DumpArgs,
    out: &mut Out<W>,
) -> Result<Verdict, Failure> {
    let index = TimeIndex::map(Arc::new(StdFs), &file.path, file.base_offset, 0)
        .map_err(|e| Failure::Usage(format!("{}: cannot read: {e}", file.name)))?;
    let log = args
        .verify_index
        .then(|| LogBatches::read(file))
        .transpose()?;
    let mut verdict = Verdict::Sound;
    let mut mismatches = 0;
    let mut entries = 0;
    let mut previous: Option<(i64, u64)> = None;
    for i in 0..index.len() {
        let Some(entry) = index.entry(i) else {
            verdict = Verdict::Damaged;
            out.emit(&Line::Error {
                file: file.name.clone(),
                position: (i * 12) as u64,
                message: "the entry's offset overflows the base offset".into(),
            })?;
            continue;
        };
        // Preallocated space, as in the offset index.
        if i > 0 && entry.offset == file.base_offset && entry.timestamp == 0 {
            out.emit(&Line::Note {
                file: file.name.clone(),
                message: format!(
                    "{} zero-filled entries from entry {i} (preallocated space, not entries)",
                    index.len() - i
                ),
            })?;
            break;
        }
        entries += 1;
        out.emit(&Line::TimeIndexEntry {
            file: file.name.clone(),
            timestamp: entry.timestamp,
            offset: entry.offset,
        })?;
        let Some(log) = &log else { continue };
        let problem = match log.max_timestamp_through.get(&entry.offset) {
            _ if previous.is_some_and(|(t, o)| entry.timestamp <= t || entry.offset < o) => {
                Some("entries must grow in timestamp (and not fall in offset)".to_owned())
            }
            None => Some(format!(
                "no batch of the log ends at offset {}",
                entry.offset
            )),
            // Kafka's rule: the segment's largest timestamp as of the batch the entry names.
            Some(&max) if max != entry.timestamp => Some(format!(
                "the log's largest timestamp through offset {} is {max}",
                entry.offset
            )),
            Some(_) => None,
        };
        previous = Some((entry.timestamp, entry.offset));
        if let Some(message) = problem {
            mismatches += 1;
            out.emit(&Line::IndexMismatch {
                file: file.name.clone(),
                entry: i,
                offset: entry.offset,
                position: None,
                timestamp: Some(entry.timestamp),
                message,
            })?;
        }
    }
    if let Some(len) = partial_entry(file, 12)? {
        verdict = Verdict::Damaged;
        out.emit(&Line::Error {
            file: file.name.clone(),
            position: len / 12 * 12,
            message: format!("the file ends inside an entry ({len} bytes, entries are 12)"),
        })?;
    }
    finish_verify(file, log.is_some(), entries, mismatches, verdict, out)
}

fn finish_verify<W: Write>(
    file: &SegmentFile,
    verified: bool,
    entries: usize,
    mismatches: usize,
    verdict: Verdict,
    out: &mut Out<W>,
) -> Result<Verdict, Failure> {
    if !verified {
        return Ok(verdict);
    }
    out.emit(&Line::IndexVerified {
        file: file.name.clone(),
        entries,
        mismatches,
    })?;
    Ok(if mismatches > 0 {
        Verdict::Damaged
    } else {
        verdict
    })
}
