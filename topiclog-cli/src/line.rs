//! The lines a command prints: each one a [`Line`], rendered as text shaped like Kafka's tools'
//! output, or (`--json`) as one JSON object whose `type` names the variant and whose field names
//! are stable (fields may be added, none renamed or removed).

use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

/// Bytes from a record (key, value, header value) as `--print-data` shows them.
#[derive(Debug, Serialize)]
pub enum Printed {
    /// Valid UTF-8 without control characters (which would break a line of text), shown as is
    /// (JSON: `{"utf8": "..."}`).
    #[serde(rename = "utf8")]
    Text(String),
    /// Anything else, or everything under `--hex`: lower-case hex (JSON: `{"hex": "..."}`;
    /// text: `0x...`).
    #[serde(rename = "hex")]
    Hex(String),
}

impl Printed {
    pub fn new(bytes: &[u8], force_hex: bool) -> Printed {
        match std::str::from_utf8(bytes) {
            Ok(text) if !force_hex && !text.chars().any(char::is_control) => {
                Printed::Text(text.to_owned())
            }
            _ => Printed::Hex(bytes.iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })),
        }
    }

    fn text(data: &Option<Printed>) -> String {
        match data {
            None => "null".to_owned(),
            Some(Printed::Text(t)) => t.clone(),
            Some(Printed::Hex(h)) => format!("0x{h}"),
        }
    }
}

/// A record header as `--print-data` shows it.
#[derive(Debug, Serialize)]
pub struct HeaderContent {
    pub key: String,
    /// `None` for a null value.
    pub value: Option<Printed>,
}

/// One record batch of a `.log`: its header, where it lies, and whether its CRC verifies.
#[derive(Debug, Serialize)]
pub struct BatchLine {
    pub base_offset: u64,
    pub last_offset: u64,
    /// Records stored (compaction can leave fewer than the offset range).
    pub count: u32,
    /// Byte position of the batch in the file.
    pub position: u64,
    /// Bytes of the whole batch, as its length field says.
    pub size: u64,
    pub magic: u8,
    /// The stored CRC-32C.
    pub crc: u32,
    /// Whether it matches the bytes; `None` when the batch is cut short and cannot be checked.
    pub crc_valid: Option<bool>,
    /// Kafka's codec name: `none`, `gzip`, `snappy`, `lz4`, `zstd`.
    pub compression: &'static str,
    /// `create_time` or `log_append_time`.
    pub timestamp_type: &'static str,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// Sequence of the last record, -1 without a producer (Kafka's `lastSequence`).
    pub last_sequence: i32,
    pub partition_leader_epoch: i32,
    pub is_transactional: bool,
    pub is_control: bool,
    /// KIP-534's delete horizon, when a compaction stored one.
    pub delete_horizon_ms: Option<i64>,
}

/// One record of a batch (`--deep`), with its data under `--print-data`.
#[derive(Debug, Serialize)]
pub struct RecordLine {
    pub offset: u64,
    pub timestamp: i64,
    /// -1 for a null key (Kafka's convention).
    pub key_size: i64,
    /// -1 for a null value (a tombstone).
    pub value_size: i64,
    pub header_count: usize,
    /// The producer's sequence number of this record, -1 without a producer.
    pub sequence: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<RecordContent>,
    /// In a control batch: the transaction marker the record is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<ControlMarker>,
}

/// A control record, decoded as Kafka's `ControlRecordType` (key: version, type) and
/// `EndTransactionMarker` (value: version, coordinator epoch) lay it out.
#[derive(Debug, Serialize)]
pub struct ControlMarker {
    /// `COMMIT`, `ABORT`, or `UNKNOWN(<type>)` (as kafka-dump-log names them).
    pub marker: String,
    /// The transaction coordinator's epoch, when the value holds one.
    pub coordinator_epoch: Option<i32>,
}

impl ControlMarker {
    /// The marker a control record's key and value describe; `None` if the key is too short.
    pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Option<ControlMarker> {
        let key = key?;
        let kind = i16::from_be_bytes(key.get(2..4)?.try_into().ok()?);
        let marker = match kind {
            0 => "ABORT".to_owned(),
            1 => "COMMIT".to_owned(),
            n => format!("UNKNOWN({n})"),
        };
        let coordinator_epoch = value
            .and_then(|v| v.get(2..6))
            .and_then(|b| b.try_into().ok())
            .map(i32::from_be_bytes);
        Some(ControlMarker {
            marker,
            coordinator_epoch,
        })
    }
}

/// A record's key, value and headers (`--print-data`).
#[derive(Debug, Serialize)]
pub struct RecordContent {
    pub key: Option<Printed>,
    pub value: Option<Printed>,
    pub headers: Vec<HeaderContent>,
}

/// Everything a command prints.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    /// A file begins: what it is and the base offset its name gives.
    File {
        file: String,
        /// `log`, `index` or `timeindex`.
        kind: &'static str,
        base_offset: u64,
    },
    Batch {
        file: String,
        #[serde(flatten)]
        batch: BatchLine,
    },
    Record {
        file: String,
        #[serde(flatten)]
        record: RecordLine,
    },
    /// An `.index` entry, its offset made absolute.
    IndexEntry {
        file: String,
        offset: u64,
        position: u32,
    },
    /// A `.timeindex` entry, its offset made absolute.
    TimeIndexEntry {
        file: String,
        timestamp: i64,
        offset: u64,
    },
    /// `--verify-index`: an entry that does not match the `.log`.
    IndexMismatch {
        file: String,
        /// The entry's number in the file, from 0.
        entry: usize,
        offset: u64,
        /// What the entry says beside the offset: a position (`.index`) or a timestamp
        /// (`.timeindex`).
        #[serde(skip_serializing_if = "Option::is_none")]
        position: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        timestamp: Option<i64>,
        message: String,
    },
    /// `--verify-index`: how an index file compared with its `.log`.
    IndexVerified {
        file: String,
        entries: usize,
        mismatches: usize,
    },
    /// Something worth knowing that is not damage (a preallocated zero-filled tail).
    Note { file: String, message: String },
    /// Damage: where it is (a byte position in the file) and what is wrong.
    Error {
        file: String,
        position: u64,
        message: String,
    },
}

/// A line that prints as text for people (and, being `Serialize`, as JSON for scripts).
pub trait Text {
    /// The line as text, without its newline.
    fn text(&self) -> String;
}

impl Text for Line {
    fn text(&self) -> String {
        match self {
            Line::File {
                file, base_offset, ..
            } => format!("Dumping {file}\nStarting offset: {base_offset}"),
            Line::Batch { batch: b, .. } => {
                let horizon = b
                    .delete_horizon_ms
                    .map_or_else(|| "none".to_owned(), |h| h.to_string());
                let crc_valid = b
                    .crc_valid
                    .map_or_else(|| "unknown".to_owned(), |v| v.to_string());
                let timestamp_type = if b.timestamp_type == "log_append_time" {
                    "LogAppendTime"
                } else {
                    "CreateTime"
                };
                format!(
                    "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} \
                     producerId: {} producerEpoch: {} partitionLeaderEpoch: {} \
                     isTransactional: {} isControl: {} deleteHorizonMs: {horizon} position: {} \
                     {timestamp_type}: {} size: {} magic: {} compresscodec: {} crc: {} \
                     isvalid: {crc_valid}",
                    b.base_offset,
                    b.last_offset,
                    b.count,
                    b.base_sequence,
                    b.last_sequence,
                    b.producer_id,
                    b.producer_epoch,
                    b.partition_leader_epoch,
                    b.is_transactional,
                    b.is_control,
                    b.position,
                    b.max_timestamp,
                    b.size,
                    b.magic,
                    b.compression,
                    b.crc,
                )
            }
            Line::Record { record: r, .. } => {
                let mut s = format!(
                    "| offset: {} timestamp: {} keySize: {} valueSize: {} sequence: {} \
                     headerCount: {}",
                    r.offset, r.timestamp, r.key_size, r.value_size, r.sequence, r.header_count
                );
                if let Some(c) = &r.control {
                    let _ = write!(s, " endTxnMarker: {}", c.marker);
                    if let Some(epoch) = c.coordinator_epoch {
                        let _ = write!(s, " coordinatorEpoch: {epoch}");
                    }
                }
                if let Some(d) = &r.data {
                    let headers: Vec<String> = d
                        .headers
                        .iter()
                        .map(|h| {
                            // A header key is UTF-8 by the format, but may hold a newline.
                            format!("{}={}", h.key.escape_debug(), Printed::text(&h.value))
                        })
                        .collect();
                    let _ = write!(
                        s,
                        " headers: [{}] key: {} payload: {}",
                        headers.join(", "),
                        Printed::text(&d.key),
                        Printed::text(&d.value)
                    );
                }
                s
            }
            Line::IndexEntry {
                offset, position, ..
            } => format!("offset: {offset} position: {position}"),
            Line::TimeIndexEntry {
                timestamp, offset, ..
            } => format!("timestamp: {timestamp} offset: {offset}"),
            Line::IndexMismatch {
                entry,
                offset,
                position,
                timestamp,
                message,
                ..
            } => {
                let what = match (position, timestamp) {
                    (Some(p), _) => format!("offset: {offset} position: {p}"),
                    (None, Some(t)) => format!("timestamp: {t} offset: {offset}"),
                    (None, None) => format!("offset: {offset}"),
                };
                format!("Mismatch in entry {entry} ({what}): {message}")
            }
            Line::IndexVerified {
                file,
                entries,
                mismatches,
            } => format!("Verified {file}: {entries} entries, {mismatches} mismatches"),
            Line::Note { message, .. } => format!("Note: {message}"),
            Line::Error {
                position, message, ..
            } => format!("Error at position {position}: {message}"),
        }
    }
}

/// Where lines go: standard output, as text or JSON Lines.
pub struct Out<W: Write> {
    writer: W,
    json: bool,
}

impl<W: Write> Out<W> {
    pub fn new(writer: W, json: bool) -> Self {
        Out { writer, json }
    }

    pub fn emit<L: Serialize + Text>(&mut self, line: &L) -> io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.writer, line)?;
            self.writer.write_all(b"\n")
        } else {
            writeln!(self.writer, "{}", line.text())
        }
    }

    /// Text as is, on a line of its own (headings, records in text form).
    pub fn raw(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.writer, "{text}")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}
