//! Record batches: the unit of append, storage, checksum and read.

use std::borrow::Borrow;

use bytes::Bytes;

use super::record::{parse_record, Record, StoredRecord};
use super::*;

/// The decoded header of a record batch. See `docs/FORMAT.md` for the byte layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: u64,
    /// Value of the length field: bytes after it.
    pub length: u32,
    /// Stored CRC-32 of the bytes after the CRC field.
    pub crc: u32,
    /// Format version.
    pub version: u8,
    /// Attribute bits (compression, timestamp type, control).
    pub attributes: u16,
    /// Offset of the last record minus the base offset.
    pub last_offset_delta: u32,
    /// Timestamp of the first record.
    pub first_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 when unused.
    pub producer_id: i64,
    /// Producer epoch, -1 when unused.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 when unused.
    pub base_sequence: i32,
    /// Number of records stored (compaction can make it smaller than `last_offset_delta + 1`).
    pub record_count: u32,
}

impl BatchHeader {
    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta)
    }

    /// The offset after the batch.
    pub fn next_offset(&self) -> u64 {
        self.last_offset() + 1
    }

    /// Size of the whole batch in bytes.
    pub fn total_len(&self) -> usize {
        BATCH_PREFIX_LEN - 4 + self.length as usize
    }

    /// Whether timestamps were assigned by the log at append time.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    /// Decode a header from the first [`BATCH_HEADER_LEN`] bytes of `b`, checking only structure
    /// (not the CRC). `Err` says what is wrong.
    pub fn parse(b: &[u8]) -> Result<BatchHeader, &'static str> {
        let h = b
            .first_chunk::<BATCH_HEADER_LEN>()
            .ok_or("batch header is truncated")?;
        // `h` is an array: every field position is checked against its size when compiling.
        macro_rules! field {
            ($at:expr, $len:literal, $ty:ty) => {{
                let mut bytes = [0; $len];
                bytes.copy_from_slice(&h[$at..$at + $len]);
                <$ty>::from_le_bytes(bytes)
            }};
        }
        let header = BatchHeader {
            base_offset: field!(BASE_OFFSET_OFFSET, 8, u64),
            length: field!(LENGTH_OFFSET, 4, u32),
            crc: field!(CRC_OFFSET, 4, u32),
            version: h[VERSION_OFFSET],
            attributes: field!(ATTRIBUTES_OFFSET, 2, u16),
            last_offset_delta: field!(LAST_OFFSET_DELTA_OFFSET, 4, u32),
            first_timestamp: field!(FIRST_TIMESTAMP_OFFSET, 8, i64),
            max_timestamp: field!(MAX_TIMESTAMP_OFFSET, 8, i64),
            producer_id: field!(PRODUCER_ID_OFFSET, 8, i64),
            producer_epoch: field!(PRODUCER_EPOCH_OFFSET, 2, i16),
            base_sequence: field!(BASE_SEQUENCE_OFFSET, 4, i32),
            record_count: field!(RECORD_COUNT_OFFSET, 4, u32),
        };
        header.check()?;
        Ok(header)
    }

    fn check(&self) -> Result<(), &'static str> {
        if self.length < MIN_BATCH_LENGTH_FIELD {
            return Err("batch length is smaller than a batch header");
        }
        if self.length as usize > MAX_BATCH_BYTES_LIMIT {
            return Err("batch length exceeds the format's maximum");
        }
        if self.version != BATCH_VERSION {
            return Err("unknown batch format version");
        }
        if u64::from(self.record_count) > u64::from(self.last_offset_delta) + 1 {
            return Err("record count exceeds the batch's offset range");
        }
        if self
            .base_offset
            .checked_add(u64::from(self.last_offset_delta) + 1)
            .is_none()
        {
            return Err("batch offsets overflow u64");
        }
        if self.max_timestamp < self.first_timestamp && self.record_count > 0 {
            return Err("max timestamp is below the first timestamp");
        }
        Ok(())
    }
}

/// What the bytes at a position hold, judged from the header alone (no CRC): used by scans that
/// walk batch boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Fewer than a header's bytes are available.
    ShortHeader,
    /// A structurally valid header; the batch spans `header.total_len()` bytes.
    Batch(BatchHeader),
    /// Not a batch header.
    Invalid(&'static str),
}

pub(crate) fn peek_frame(b: &[u8]) -> Frame {
    if b.len() < BATCH_HEADER_LEN {
        return Frame::ShortHeader;
    }
    match BatchHeader::parse(b) {
        Ok(h) => Frame::Batch(h),
        Err(reason) => Frame::Invalid(reason),
    }
}

/// A validated record batch: its CRC matched and its records parse. Cheap to clone; records are
/// zero-copy slices of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordBatch {
    header: BatchHeader,
    bytes: Bytes,
}

impl RecordBatch {
    /// Validate `bytes` as exactly one batch: length, CRC, version and the framing of every record.
    /// On failure returns the byte position (relative to `bytes`) and a reason.
    pub fn decode(bytes: Bytes) -> Result<RecordBatch, (usize, &'static str)> {
        let header = BatchHeader::parse(&bytes).map_err(|r| (0, r))?;
        if header.total_len() != bytes.len() {
            return Err((
                LENGTH_OFFSET,
                "batch length does not match the bytes available",
            ));
        }
        // The header parsed, so the CRC-covered region is there.
        let covered = bytes.get(BATCH_PREFIX_LEN..).unwrap_or_default();
        if crc32fast::hash(covered) ^ base_offset_crc(header.base_offset) != header.crc {
            return Err((CRC_OFFSET, "CRC mismatch"));
        }
        let mut pos = RECORDS_OFFSET;
        let mut prev_delta: Option<u64> = None;
        for _ in 0..header.record_count {
            let at = pos;
            let parts =
                parse_record(&bytes, &mut pos, bytes.len()).ok_or((at, "malformed record"))?;
            if parts.offset_delta > u64::from(header.last_offset_delta)
                || prev_delta.is_some_and(|p| parts.offset_delta <= p)
            {
                return Err((at, "record offset delta out of order or out of range"));
            }
            prev_delta = Some(parts.offset_delta);
        }
        if pos != bytes.len() {
            return Err((pos, "bytes left over after the last record"));
        }
        // Compaction keeps a batch's offset range when it drops records, so the last record may
        // sit below `last offset delta` (checked above never to exceed it).
        Ok(RecordBatch { header, bytes })
    }

    /// Encode `records` as one batch starting at `base_offset`, exactly as a partition writes it;
    /// records without a timestamp get `default_timestamp`. For building a log of your own on
    /// [`Segment`](crate::segment::Segment).
    ///
    /// # Errors
    /// [`Error::EmptyBatch`](crate::Error::EmptyBatch) for no records;
    /// [`Error::RecordTooLarge`](crate::Error::RecordTooLarge) past the format's 256 MiB limit.
    ///
    /// # Examples
    /// ```
    /// use topiclog::{segment::RecordBatch, Record};
    /// let batch = RecordBatch::build(&[Record::new("a"), Record::new("b")], 10, 1_000)?;
    /// assert_eq!((batch.base_offset(), batch.last_offset()), (10, 11));
    /// assert_eq!(RecordBatch::decode(batch.as_bytes().clone()).unwrap(), batch);
    /// # Ok::<(), topiclog::Error>(())
    /// ```
    pub fn build<R: Borrow<Record>>(
        records: &[R],
        base_offset: u64,
        default_timestamp: i64,
    ) -> crate::Result<RecordBatch> {
        if records.is_empty() {
            return Err(crate::Error::EmptyBatch);
        }
        let meta = BatchMeta::new(default_timestamp);
        let len = encoded_batch_len(records, &meta);
        if len > MAX_BATCH_BYTES_LIMIT || records.len() > u32::MAX as usize {
            return Err(crate::Error::RecordTooLarge {
                size: len,
                max: MAX_BATCH_BYTES_LIMIT,
            });
        }
        let mut buf = Vec::with_capacity(len);
        encode_batch(&mut buf, records, &meta);
        patch_base_offset(&mut buf, base_offset);
        let header = BatchHeader::parse(&buf).map_err(|r| crate::Error::Corrupt {
            path: Default::default(),
            position: 0,
            reason: r.into(),
        })?;
        Ok(RecordBatch {
            header,
            bytes: Bytes::from(buf),
        })
    }

    /// The batch header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Offset of the first record slot.
    pub fn base_offset(&self) -> u64 {
        self.header.base_offset
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.header.last_offset()
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> u64 {
        self.header.next_offset()
    }

    /// Largest record timestamp.
    pub fn max_timestamp(&self) -> i64 {
        self.header.max_timestamp
    }

    /// Number of records.
    pub fn record_count(&self) -> u32 {
        self.header.record_count
    }

    /// The raw bytes of the batch as stored.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The batch's records in offset order.
    pub fn records(&self) -> Records {
        Records {
            bytes: self.bytes.clone(),
            pos: RECORDS_OFFSET,
            remaining: self.header.record_count,
            base_offset: self.header.base_offset,
            first_timestamp: self.header.first_timestamp,
        }
    }
}

impl IntoIterator for &RecordBatch {
    type Item = StoredRecord;
    type IntoIter = Records;
    fn into_iter(self) -> Records {
        self.records()
    }
}

/// Iterator over a batch's records.
#[derive(Clone, Debug)]
pub struct Records {
    bytes: Bytes,
    pos: usize,
    remaining: u32,
    base_offset: u64,
    first_timestamp: i64,
}

impl Iterator for Records {
    type Item = StoredRecord;

    fn next(&mut self) -> Option<StoredRecord> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // Validated by `RecordBatch::decode`; a failure here would end iteration, never panic.
        let p = parse_record(&self.bytes, &mut self.pos, self.bytes.len())?;
        Some(StoredRecord {
            offset: self.base_offset + p.offset_delta,
            timestamp: self.first_timestamp.wrapping_add(p.timestamp_delta),
            key: p.key.map(|r| self.bytes.slice(r)),
            value: p.value.map(|r| self.bytes.slice(r)),
            headers: self.bytes.slice(p.headers),
            header_count: p.header_count,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

impl ExactSizeIterator for Records {}

/// Fields of a batch that the appender chooses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchMeta {
    pub default_timestamp: i64,
    pub log_append_time: bool,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchMeta {
    pub(crate) fn new(default_timestamp: i64) -> Self {
        BatchMeta {
            default_timestamp,
            log_append_time: false,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }
}

fn record_timestamp(r: &Record, meta: &BatchMeta) -> i64 {
    if meta.log_append_time {
        meta.default_timestamp
    } else {
        r.timestamp.unwrap_or(meta.default_timestamp)
    }
}

/// Exact encoded size of a batch holding `records`.
pub(crate) fn encoded_batch_len<R: Borrow<Record>>(records: &[R], meta: &BatchMeta) -> usize {
    let first_ts = records
        .first()
        .map_or(0, |r| record_timestamp(r.borrow(), meta));
    let mut n = BATCH_HEADER_LEN;
    for (i, r) in records.iter().enumerate() {
        let r = r.borrow();
        let body = r.body_len(record_timestamp(r, meta).wrapping_sub(first_ts), i as u32);
        n += super::varint::uvarint_len(body as u64) + body;
    }
    n
}

/// Encode `records` as one batch (base offset 0, CRC computed) at the end of `buf`. The caller has
/// checked that `records` is non-empty and fits `u32` offset deltas.
pub(crate) fn encode_batch<R: Borrow<Record>>(buf: &mut Vec<u8>, records: &[R], meta: &BatchMeta) {
    let start = buf.len();
    let first_ts = records
        .first()
        .map_or(0, |r| record_timestamp(r.borrow(), meta));
    let mut max_ts = i64::MIN;
    buf.resize(start + BATCH_HEADER_LEN, 0);
    for (i, r) in records.iter().enumerate() {
        let r = r.borrow();
        let ts = record_timestamp(r, meta);
        max_ts = max_ts.max(ts);
        r.encode(buf, ts.wrapping_sub(first_ts), i as u32);
    }
    let mut attributes = 0u16;
    if meta.log_append_time {
        attributes |= ATTR_LOG_APPEND_TIME;
    }
    let fields = BatchHeader {
        base_offset: 0,
        length: 0,
        crc: 0,
        version: BATCH_VERSION,
        attributes,
        last_offset_delta: records.len().saturating_sub(1) as u32,
        first_timestamp: first_ts,
        max_timestamp: max_ts,
        producer_id: meta.producer_id,
        producer_epoch: meta.producer_epoch,
        base_sequence: meta.base_sequence,
        record_count: records.len() as u32,
    };
    #[expect(
        clippy::indexing_slicing,
        reason = "`start` was the buffer's length before it grew by a header and the records"
    )]
    write_header(&mut buf[start..], &fields);
}

/// Fill in the header of the encoded batch `h` (the whole batch, records in place) from
/// `fields`: the length from `h`'s size, the current version, every other field, then the CRC.
/// (`fields.length`, `crc` and `version` are not used.) The one writer of the header layout.
fn write_header(batch: &mut [u8], fields: &BatchHeader) {
    let f = fields;
    let length = u32::try_from(batch.len() - CRC_OFFSET.min(batch.len())).unwrap_or(u32::MAX);
    let Some((h, records)) = batch.split_first_chunk_mut::<BATCH_HEADER_LEN>() else {
        debug_assert!(false, "callers make room for the header");
        return;
    };
    // `h` is an array: every position below is checked against its size when compiling.
    h[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&f.base_offset.to_le_bytes());
    h[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&length.to_le_bytes());
    h[VERSION_OFFSET] = BATCH_VERSION;
    h[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&f.attributes.to_le_bytes());
    h[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
        .copy_from_slice(&f.last_offset_delta.to_le_bytes());
    h[FIRST_TIMESTAMP_OFFSET..FIRST_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&f.first_timestamp.to_le_bytes());
    h[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&f.max_timestamp.to_le_bytes());
    h[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&f.producer_id.to_le_bytes());
    h[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2]
        .copy_from_slice(&f.producer_epoch.to_le_bytes());
    h[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4]
        .copy_from_slice(&f.base_sequence.to_le_bytes());
    h[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4].copy_from_slice(&f.record_count.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[BATCH_PREFIX_LEN..]);
    crc.update(records);
    let crc = crc.finalize() ^ base_offset_crc(f.base_offset);
    h[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Encode the `retained` records of a batch whose header is `original` as a new batch at the end
/// of `buf`: same base offset, offset range (`last offset delta`), attributes, first timestamp and
/// producer fields, so offsets and the log's shape survive; record count, length, maximum
/// timestamp and CRC describe what is left. Used by compaction. `retained` must be in offset
/// order and lie inside `original`'s offset range; empty, it makes an empty batch (no records)
/// that still spans the offset range, which compaction uses to end a cleaned segment exactly
/// where the next one begins.
pub(crate) fn encode_retained(
    buf: &mut Vec<u8>,
    original: &BatchHeader,
    retained: &[StoredRecord],
) {
    let start = buf.len();
    buf.resize(start + BATCH_HEADER_LEN, 0);
    let mut max_ts = i64::MIN;
    for r in retained {
        max_ts = max_ts.max(r.timestamp);
        r.encode(
            buf,
            r.timestamp.wrapping_sub(original.first_timestamp),
            r.offset - original.base_offset,
        );
    }
    let fields = BatchHeader {
        // Never below the first timestamp (the header check), even if the first record went.
        max_timestamp: max_ts.max(original.first_timestamp),
        record_count: retained.len() as u32,
        ..*original
    };
    #[expect(
        clippy::indexing_slicing,
        reason = "`start` was the buffer's length before it grew by a header and the records"
    )]
    write_header(&mut buf[start..], &fields);
}

/// Whether `bytes` is exactly the batch `header` describes and its CRC matches: every header
/// field (the base offset included) is then what the writer wrote. Checks no record framing.
pub(crate) fn crc_matches(bytes: &[u8], header: &BatchHeader) -> bool {
    bytes.len() == header.total_len()
        && bytes.get(BATCH_PREFIX_LEN..).is_some_and(|covered| {
            crc32fast::hash(covered) ^ base_offset_crc(header.base_offset) == header.crc
        })
}

/// CRC-32 of a base offset's 8 little-endian bytes. The stored CRC is
/// `crc32(bytes after the CRC field) ^ base_offset_crc(base offset)`, so the base offset is
/// protected too, yet can be assigned after encoding at the cost of hashing 8 bytes.
#[inline]
pub(crate) fn base_offset_crc(base_offset: u64) -> u32 {
    crc32fast::hash(&base_offset.to_le_bytes())
}

/// Give an encoded batch (at least a header's worth of bytes) a new base offset, keeping its CRC
/// valid. Returns `false`, changing nothing, if `batch` is shorter than a batch header.
///
/// # Examples
/// ```
/// use topiclog::{internals::format, segment::RecordBatch, Record};
/// let mut bytes = RecordBatch::build(&[Record::new("x")], 0, 0)?.as_bytes().to_vec();
/// assert!(format::set_base_offset(&mut bytes, 500));
/// assert_eq!(RecordBatch::decode(bytes.into()).unwrap().base_offset(), 500);
/// # Ok::<(), topiclog::Error>(())
/// ```
pub fn set_base_offset(batch: &mut [u8], base_offset: u64) -> bool {
    if batch.len() < BATCH_HEADER_LEN {
        return false;
    }
    patch_base_offset(batch, base_offset);
    true
}

/// Set the base offset of an encoded batch, updating the CRC (see [`base_offset_crc`]). Bytes
/// too short to hold a base offset and a CRC are left alone (callers pass encoded batches).
pub(crate) fn patch_base_offset(batch: &mut [u8], base_offset: u64) {
    let Some(prefix) = batch.first_chunk_mut::<BATCH_PREFIX_LEN>() else {
        debug_assert!(false, "not an encoded batch");
        return;
    };
    // `prefix` is an array: these positions are checked when compiling.
    let mut old = [0; 8];
    old.copy_from_slice(&prefix[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8]);
    let mut crc = [0; 4];
    crc.copy_from_slice(&prefix[CRC_OFFSET..CRC_OFFSET + 4]);
    let crc = u32::from_le_bytes(crc)
        ^ base_offset_crc(u64::from_le_bytes(old))
        ^ base_offset_crc(base_offset);
    prefix[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&base_offset.to_le_bytes());
    prefix[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::indexing_slicing,
        reason = "tests index fixtures they built themselves"
    )]

    use super::*;

    fn encode(records: &[Record], base: u64) -> Bytes {
        let meta = BatchMeta::new(1000);
        let mut buf = Vec::new();
        encode_batch(&mut buf, records, &meta);
        assert_eq!(buf.len(), encoded_batch_len(records, &meta));
        patch_base_offset(&mut buf, base);
        Bytes::from(buf)
    }

    #[test]
    fn round_trip_all_fields() {
        let records = vec![
            Record::new("v0").with_key("k0").with_timestamp(5000),
            Record::tombstone("k1").with_timestamp(4000),
            Record::default()
                .with_header("h", Bytes::from("x"))
                .with_header("empty", None),
            Record::new(Bytes::new()),
        ];
        let batch = RecordBatch::decode(encode(&records, 77)).unwrap();
        assert_eq!(batch.base_offset(), 77);
        assert_eq!(batch.last_offset(), 80);
        assert_eq!(batch.max_timestamp(), 5000);
        let got: Vec<StoredRecord> = batch.records().collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].offset(), 77);
        assert_eq!(got[0].timestamp(), 5000);
        assert_eq!(got[0].key().unwrap(), &Bytes::from("k0"));
        assert_eq!(got[1].value(), None);
        assert_eq!(got[1].timestamp(), 4000);
        assert_eq!(got[2].timestamp(), 1000, "default timestamp applies");
        assert_eq!(got[2].key(), None);
        let hs: Vec<_> = got[2].headers().collect();
        assert_eq!(
            hs,
            vec![
                Header {
                    key: "h",
                    value: Some(b"x")
                },
                Header {
                    key: "empty",
                    value: None
                }
            ]
        );
        assert_eq!(got[3].value().unwrap().len(), 0);
        assert_eq!(got[2].to_record().headers().len(), 2);
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let bytes = encode(&[Record::new("hello").with_key("k")], 12345);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.to_vec();
                b[i] ^= 1 << bit;
                assert!(
                    RecordBatch::decode(Bytes::from(b)).is_err(),
                    "flip at {i}:{bit}"
                );
            }
        }
    }

    #[test]
    fn truncation_is_detected() {
        let bytes = encode(&[Record::new("hello"), Record::new("world")], 0);
        for len in 0..bytes.len() {
            assert!(RecordBatch::decode(bytes.slice(..len)).is_err());
        }
    }

    #[test]
    fn header_rejects_huge_length() {
        let mut b = encode(&[Record::new("x")], 0).to_vec();
        b[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(peek_frame(&b), Frame::Invalid(_)));
    }
}
