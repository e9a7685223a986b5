//! Kafka's on-disk layouts, parsed independently of topiclog's `format` module and of
//! kafka-protocol: written from Kafka's documentation (<https://kafka.apache.org/documentation/#recordbatch>)
//! and the field offsets of Kafka's `DefaultRecordBatch.java` / `DefaultRecord.java`,
//! `OffsetIndex.java` and `TimeIndex.java`. Everything is big-endian; varints are Kafka's
//! zig-zag LEB128 (`ByteUtils.readVarint`/`readVarlong`).
//!
//! Used for the batch-level facts kafka-protocol does not expose (magic at byte 16, the CRC's
//! range, max timestamp, last offset delta, record count, attribute bits, record attributes,
//! that the records fill the batch exactly) and to read `.index` / `.timeindex` files.

/// `RecordBatch` v2 header fields (`DefaultRecordBatch.java`): offset of each field.
pub const BASE_OFFSET_OFFSET: usize = 0;
pub const LENGTH_OFFSET: usize = 8;
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub const MAGIC_OFFSET: usize = 16;
pub const CRC_OFFSET: usize = 17;
pub const ATTRIBUTES_OFFSET: usize = 21;
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
pub const PRODUCER_ID_OFFSET: usize = 43;
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
pub const BASE_SEQUENCE_OFFSET: usize = 53;
pub const RECORDS_COUNT_OFFSET: usize = 57;
/// Header size (`RECORD_BATCH_OVERHEAD`); the records start here.
pub const RECORDS_OFFSET: usize = 61;
/// Base offset + length (`LOG_OVERHEAD`): the length field counts the bytes after it.
pub const LOG_OVERHEAD: usize = 12;

/// Attribute bits (`DefaultRecordBatch.java`).
pub const COMPRESSION_CODEC_MASK: i16 = 0x07;
pub const TIMESTAMP_TYPE_MASK: i16 = 0x08;
pub const TRANSACTIONAL_FLAG_MASK: i16 = 0x10;
pub const CONTROL_FLAG_MASK: i16 = 0x20;
pub const DELETE_HORIZON_FLAG_MASK: i16 = 0x40;

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: the checksum Kafka's v2
/// batches carry (`Crc32C.java`). Slow and obviously correct.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// Unsigned LEB128 of at most `max_bytes` bytes (Kafka: 5 for an int, 10 for a long).
fn read_unsigned(b: &[u8], pos: &mut usize, max_bytes: usize) -> Result<u64, String> {
    let mut value = 0u64;
    for i in 0..max_bytes {
        let byte = *b.get(*pos).ok_or("varint runs past the end")?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(format!("varint longer than {max_bytes} bytes"))
}

/// Kafka's `readVarint`: zig-zag, at most 5 bytes, an `i32`.
pub fn read_varint(b: &[u8], pos: &mut usize) -> Result<i32, String> {
    let raw = read_unsigned(b, pos, 5)?;
    let raw = u32::try_from(raw).map_err(|_| "varint overflows an int".to_string())?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Kafka's `readVarlong`: zig-zag, at most 10 bytes, an `i64`.
pub fn read_varlong(b: &[u8], pos: &mut usize) -> Result<i64, String> {
    let raw = read_unsigned(b, pos, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Kafka's `writeVarlong` (zig-zag LEB128).
pub fn write_varlong(value: i64, out: &mut Vec<u8>) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Kafka's `writeVarint` (zig-zag LEB128 of an int).
pub fn write_varint(value: i32, out: &mut Vec<u8>) {
    let mut v = ((value << 1) ^ (value >> 31)) as u32;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One batch's header as Kafka lays it out, and the batch's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawBatch {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
    /// The whole batch, `LOG_OVERHEAD + batch_length` bytes.
    pub bytes: Vec<u8>,
}

impl RawBatch {
    /// Parse the batch at the start of `b` (which may hold more after it).
    pub fn parse(b: &[u8]) -> Result<RawBatch, String> {
        if b.len() < RECORDS_OFFSET {
            return Err(format!("{} bytes cannot hold a batch header", b.len()));
        }
        let batch_length = be_i32(b, LENGTH_OFFSET);
        if batch_length < (RECORDS_OFFSET - LOG_OVERHEAD) as i32 {
            return Err(format!(
                "batch length {batch_length} is below the header size"
            ));
        }
        let total = LOG_OVERHEAD + batch_length as usize;
        if total > b.len() {
            return Err(format!(
                "batch of {total} bytes runs past the {} bytes left",
                b.len()
            ));
        }
        Ok(RawBatch {
            base_offset: be_i64(b, BASE_OFFSET_OFFSET),
            batch_length,
            partition_leader_epoch: be_i32(b, PARTITION_LEADER_EPOCH_OFFSET),
            magic: b[MAGIC_OFFSET] as i8,
            crc: be_u32(b, CRC_OFFSET),
            attributes: be_i16(b, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(b, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: be_i64(b, BASE_TIMESTAMP_OFFSET),
            max_timestamp: be_i64(b, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(b, PRODUCER_ID_OFFSET),
            producer_epoch: be_i16(b, PRODUCER_EPOCH_OFFSET),
            base_sequence: be_i32(b, BASE_SEQUENCE_OFFSET),
            records_count: be_i32(b, RECORDS_COUNT_OFFSET),
            bytes: b[..total].to_vec(),
        })
    }

    /// The CRC-32C Kafka computes: from the attributes to the end of the batch.
    pub fn computed_crc(&self) -> u32 {
        crc32c(&self.bytes[ATTRIBUTES_OFFSET..])
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_CODEC_MASK
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_MASK != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG_MASK != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG_MASK != 0
    }

    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_FLAG_MASK != 0
    }

    /// The bytes after the header: the records (compressed as a whole if the codec is not 0).
    pub fn records_section(&self) -> &[u8] {
        &self.bytes[RECORDS_OFFSET..]
    }

    /// The records of an uncompressed batch, which must fill the batch exactly.
    pub fn records(&self) -> Result<Vec<RawRecord>, String> {
        if self.compression() != 0 {
            return Err(format!(
                "batch is compressed (codec {})",
                self.compression()
            ));
        }
        parse_records(self.records_section(), self.records_count)
    }
}

/// Split a `.log` file into its batches (position, batch). Fails unless they cover it exactly.
pub fn split_batches(file: &[u8]) -> Result<Vec<(usize, RawBatch)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < file.len() {
        let batch = RawBatch::parse(&file[pos..]).map_err(|e| format!("at position {pos}: {e}"))?;
        let len = batch.bytes.len();
        out.push((pos, batch));
        pos += len;
    }
    Ok(out)
}

/// One record of a v2 batch (`DefaultRecord.java`), with where its varints sit in the records
/// section (for byte-level vector checks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    /// Position of the record's length varint in the records section.
    pub start: usize,
    pub length: i32,
    pub attributes: i8,
    pub timestamp_delta: i64,
    /// Byte range of the timestamp delta varlong in the records section.
    pub timestamp_delta_bytes: std::ops::Range<usize>,
    pub offset_delta: i32,
    /// Byte range of the offset delta varint in the records section.
    pub offset_delta_bytes: std::ops::Range<usize>,
    pub key: Option<Vec<u8>>,
    /// Byte range of the key length varint in the records section.
    pub key_length_bytes: std::ops::Range<usize>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn nullable(b: &[u8], pos: &mut usize, end: usize, what: &str) -> Result<Option<Vec<u8>>, String> {
    let len = read_varint(b, pos)?;
    if len < -1 {
        return Err(format!("{what} length {len}"));
    }
    if len == -1 {
        return Ok(None);
    }
    let len = len as usize;
    if *pos + len > end {
        return Err(format!("{what} of {len} bytes runs past the record"));
    }
    let v = b[*pos..*pos + len].to_vec();
    *pos += len;
    Ok(Some(v))
}

/// Parse `count` records that must fill `b` exactly.
pub fn parse_records(b: &[u8], count: i32) -> Result<Vec<RawRecord>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    for i in 0..count {
        let start = pos;
        let length = read_varint(b, &mut pos)?;
        if length < 0 || pos + length as usize > b.len() {
            return Err(format!("record {i}: length {length} runs past the batch"));
        }
        let end = pos + length as usize;
        let attributes = b[pos] as i8;
        pos += 1;
        let ts_start = pos;
        let timestamp_delta = read_varlong(b, &mut pos)?;
        let timestamp_delta_bytes = ts_start..pos;
        let od_start = pos;
        let offset_delta = read_varint(b, &mut pos)?;
        let offset_delta_bytes = od_start..pos;
        let kl_start = pos;
        let key = nullable(b, &mut pos, end, "key")?;
        let key_length_bytes = kl_start..kl_start + varint_len(&b[kl_start..]);
        let value = nullable(b, &mut pos, end, "value")?;
        let header_count = read_varint(b, &mut pos)?;
        if header_count < 0 {
            return Err(format!("record {i}: header count {header_count}"));
        }
        let mut headers = Vec::new();
        for _ in 0..header_count {
            let k = nullable(b, &mut pos, end, "header key")?
                .ok_or_else(|| format!("record {i}: null header key"))?;
            let v = nullable(b, &mut pos, end, "header value")?;
            headers.push((k, v));
        }
        if pos != end {
            return Err(format!(
                "record {i}: fields end at {pos}, its length says {end}"
            ));
        }
        out.push(RawRecord {
            start,
            length,
            attributes,
            timestamp_delta,
            timestamp_delta_bytes,
            offset_delta,
            offset_delta_bytes,
            key,
            key_length_bytes,
            value,
            headers,
        });
    }
    if pos != b.len() {
        return Err(format!(
            "{count} records end at {pos} of a {}-byte records section",
            b.len()
        ));
    }
    Ok(out)
}

fn varint_len(b: &[u8]) -> usize {
    b.iter()
        .position(|&x| x & 0x80 == 0)
        .map_or(b.len(), |i| i + 1)
}

/// `.index` entries (`OffsetIndex.java`): 8 bytes, relative offset `i32` + position `i32`.
pub fn parse_offset_index(b: &[u8]) -> Result<Vec<(i32, i32)>, String> {
    if !b.len().is_multiple_of(8) {
        return Err(format!(
            "offset index of {} bytes is not whole 8-byte entries",
            b.len()
        ));
    }
    Ok(b.chunks_exact(8)
        .map(|e| (be_i32(e, 0), be_i32(e, 4)))
        .collect())
}

/// `.timeindex` entries (`TimeIndex.java`): 12 bytes, timestamp `i64` + relative offset `i32`.
pub fn parse_time_index(b: &[u8]) -> Result<Vec<(i64, i32)>, String> {
    if !b.len().is_multiple_of(12) {
        return Err(format!(
            "time index of {} bytes is not whole 12-byte entries",
            b.len()
        ));
    }
    Ok(b.chunks_exact(12)
        .map(|e| (be_i64(e, 0), be_i32(e, 8)))
        .collect())
}

/// Set the attributes and max timestamp of an encoded batch and recompute its CRC, as Kafka's
/// `DefaultRecordBatch.setMaxTimestamp(LOG_APPEND_TIME, t)` does in place.
pub fn set_log_append_time(batch: &mut [u8], append_time: i64) {
    let attributes = be_i16(batch, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_MASK;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&append_time.to_be_bytes());
    fix_crc(batch);
}

/// Set the partition leader epoch (outside the CRC, as Kafka's `setPartitionLeaderEpoch`).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Recompute the CRC of a batch whose covered bytes were changed.
pub fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}
