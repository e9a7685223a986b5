//! `topiclog dump`: Kafka's `kafka-dump-log --files`, over `.log`, `.index` and `.timeindex`
//! segment files (topiclog's or a Kafka broker's: the layouts are Kafka's).
//!
//! Everything is decoded by the library (`topiclog::segment`); this module walks the files, says
//! what it finds and never trusts a length it has not checked against what the file holds.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use topiclog::segment::{parse_segment_file_name, BatchHeader, SegmentFileKind};
use topiclog::{Bytes, Compression};

use crate::check::{self, walk, IndexChecker, IndexItem, IndexKind, LogBatches, WalkEnd, Walked};
use crate::line::{
    BatchLine, ControlMarker, HeaderContent, Line, Out, Printed, RecordContent, RecordLine,
};
use crate::{Failure, Verdict};

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
            kind => match IndexKind::of(kind) {
                Some(kind) => dump_index(file, kind, args, &mut out)?,
                None => unreachable_kind(file)?,
            },
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

fn batch_line(w: &Walked) -> BatchLine {
    let h = &w.header;
    let crc_valid = check::crc_valid(w);
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
        out.emit(&Line::Batch {
            file: file.name.clone(),
            batch: line,
        })?;
        // Torn: `walk` reports it once it returns.
        let Some(bytes) = w.bytes else { return Ok(()) };
        let batch = match check::check_batch(w.position, &w.header, bytes) {
            Ok(batch) => batch,
            Err((position, message)) => {
                verdict = Verdict::Damaged;
                return out.emit(&error(position, message));
            }
        };
        if !deep {
            return Ok(());
        }
        // A control batch's records are transaction markers: shown as such, not as data.
        let records = if batch.is_control() {
            batch.control_records()
        } else {
            batch.iter()
        };
        for record in records {
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
                    control: batch
                        .is_control()
                        .then(|| ControlMarker::decode(record.key(), record.value()))
                        .flatten(),
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
        WalkEnd::Damage {
            position, message, ..
        } => {
            verdict = Verdict::Damaged;
            out.emit(&error(position, message))?;
        }
    }
    Ok(verdict)
}

/// `--verify-index`: the batches of the segment's `.log`, which must be there.
fn log_batches(file: &SegmentFile) -> Result<LogBatches, Failure> {
    let path = file.sibling_log();
    let name = path.display().to_string();
    if !path.is_file() {
        return Err(Failure::Usage(format!(
            "{}: --verify-index needs the segment's log, {name}, which is missing",
            file.name
        )));
    }
    Ok(LogBatches::of(&read_file(&path, &name)?))
}

/// Dump an `.index` or `.timeindex` (one code path for both: an entry is an offset with a position
/// or with a timestamp), and under `--verify-index` check each entry against the `.log`.
fn dump_index<W: Write>(
    file: &SegmentFile,
    kind: IndexKind,
    args: &DumpArgs,
    out: &mut Out<W>,
) -> Result<Verdict, Failure> {
    let index = check::read_index(&file.path, file.base_offset, kind)
        .map_err(|message| Failure::Usage(format!("{}: {message}", file.name)))?;
    let log = args.verify_index.then(|| log_batches(file)).transpose()?;
    let mut checker = IndexChecker::new(kind);
    let mut verdict = Verdict::Sound;
    let mut mismatches = 0;
    let mut entries = 0;
    for item in &index.items {
        let (i, entry) = match *item {
            IndexItem::Overflow(i) => {
                verdict = Verdict::Damaged;
                out.emit(&Line::Error {
                    file: file.name.clone(),
                    position: i as u64 * kind.entry_len(),
                    message: "the entry's offset overflows the base offset".into(),
                })?;
                continue;
            }
            IndexItem::ZeroTail { from, count } => {
                out.emit(&Line::Note {
                    file: file.name.clone(),
                    message: format!(
                        "{count} zero-filled entries from entry {from} (preallocated space, not \
                         entries)"
                    ),
                })?;
                break;
            }
            IndexItem::Entry(i, entry) => (i, entry),
        };
        entries += 1;
        out.emit(&match (entry.position, entry.timestamp) {
            (Some(position), _) => Line::IndexEntry {
                file: file.name.clone(),
                offset: entry.offset,
                position,
            },
            (None, timestamp) => Line::TimeIndexEntry {
                file: file.name.clone(),
                timestamp: timestamp.unwrap_or_default(),
                offset: entry.offset,
            },
        })?;
        let Some(log) = &log else { continue };
        if let Some(message) = checker.check(&entry, log) {
            mismatches += 1;
            out.emit(&Line::IndexMismatch {
                file: file.name.clone(),
                entry: i,
                offset: entry.offset,
                position: entry.position,
                timestamp: entry.timestamp,
                message,
            })?;
        }
    }
    if let Some(len) = index.partial {
        verdict = Verdict::Damaged;
        let entry_len = kind.entry_len();
        out.emit(&Line::Error {
            file: file.name.clone(),
            position: len / entry_len * entry_len,
            message: format!(
                "the file ends inside an entry ({len} bytes, entries are {entry_len})"
            ),
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
