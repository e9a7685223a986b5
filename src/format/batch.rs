//! Record batches: the unit of append, storage, checksum and read.

use std::borrow::Borrow;

use bytes::Bytes;

use super::record::{
    parse_record, peek_offset_delta, skip_record, Record, RecordRef, StoredRecord,
};
use super::*;

/// The decoded header of a record batch. See `docs/FORMAT.md` for the byte layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: u64,
    /// Value of the length field: bytes after it.
    pub length: u32,
    /// Partition leader epoch (Kafka's replication epoch; topiclog writes 0).
    pub partition_leader_epoch: i32,
    /// Format ("magic"): always [`MAGIC`] once parsed.
    pub magic: u8,
    /// Stored CRC-32C of the bytes after the CRC field.
    pub crc: u32,
    /// Attribute bits (compression, timestamp type, transactional, control, delete horizon).
    pub attributes: u16,
    /// Offset of the last record minus the base offset.
    pub last_offset_delta: u32,
    /// Base timestamp: the first record's timestamp, or the delete horizon when
    /// [`delete_horizon`](Self::delete_horizon). Record timestamps are deltas from it.
    pub base_timestamp: i64,
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
        PARTITION_LEADER_EPOCH_OFFSET + self.length as usize
    }

    /// Whether timestamps were assigned by the log at append time: every record's timestamp is
    /// then the batch's maximum timestamp, as Kafka reads it.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    /// Whether this is a control batch (transaction markers written by Kafka): its records are
    /// never returned to readers.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Whether the batch belongs to a transaction (written by Kafka; topiclog does not write
    /// transactions).
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// The delete horizon (KIP-534) stored in the base timestamp by a compaction, if any.
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.attributes & ATTR_DELETE_HORIZON != 0).then_some(self.base_timestamp)
    }

    /// The compression codec bits (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression_bits(&self) -> u16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    /// The CRC-32C of `batch`, computed over what Kafka's batch CRC covers (every byte after the
    /// CRC field, attributes to the end), to compare with the stored [`crc`](Self::crc): what a
    /// dump tool reports as the CRC's validity. `batch` is one whole batch, as stored; `None` if
    /// it is shorter than the fields before the attributes.
    ///
    /// # Examples
    /// ```
    /// use topiclog::{segment::{BatchHeader, RecordBatch}, Record};
    /// let batch = RecordBatch::build(&[Record::new("x")], 0, 0)?;
    /// let bytes = batch.as_bytes();
    /// assert_eq!(BatchHeader::computed_crc(bytes), Some(batch.header().crc));
    /// let mut damaged = bytes.to_vec();
    /// *damaged.last_mut().unwrap() ^= 1;
    /// assert_ne!(BatchHeader::computed_crc(&damaged), Some(batch.header().crc));
    /// # Ok::<(), topiclog::Error>(())
    /// ```
    pub fn computed_crc(batch: &[u8]) -> Option<u32> {
        batch.get(BATCH_PREFIX_LEN..).map(crc32c)
    }

    /// Decode a header from the first [`BATCH_HEADER_LEN`] bytes of `b`, checking only structure
    /// (not the CRC). `Err` says what is wrong.
    pub fn parse(b: &[u8]) -> Result<BatchHeader, &'static str> {
        let h = b
            .first_chunk::<BATCH_HEADER_LEN>()
            .ok_or("batch header is truncated")?;
        // The magic comes first: the other fields mean nothing in another format.
        if h[MAGIC_OFFSET] != MAGIC {
            return Err("not a Kafka RecordBatch v2 (magic is not 2)");
        }
        // `h` is an array: every field position is checked against its size when compiling.
        macro_rules! field {
            ($at:expr, $len:literal, $ty:ty) => {{
                let mut bytes = [0; $len];
                bytes.copy_from_slice(&h[$at..$at + $len]);
                <$ty>::from_be_bytes(bytes)
            }};
        }
        let base_offset = field!(BASE_OFFSET_OFFSET, 8, i64);
        let length = field!(LENGTH_OFFSET, 4, i32);
        let last_offset_delta = field!(LAST_OFFSET_DELTA_OFFSET, 4, i32);
        let record_count = field!(RECORD_COUNT_OFFSET, 4, i32);
        let (Ok(base_offset), Ok(length), Ok(last_offset_delta), Ok(record_count)) = (
            u64::try_from(base_offset),
            u32::try_from(length),
            u32::try_from(last_offset_delta),
            u32::try_from(record_count),
        ) else {
            return Err("negative base offset, length, last offset delta or record count");
        };
        let header = BatchHeader {
            base_offset,
            length,
            partition_leader_epoch: field!(PARTITION_LEADER_EPOCH_OFFSET, 4, i32),
            magic: h[MAGIC_OFFSET],
            crc: field!(CRC_OFFSET, 4, u32),
            attributes: field!(ATTRIBUTES_OFFSET, 2, u16),
            last_offset_delta,
            base_timestamp: field!(BASE_TIMESTAMP_OFFSET, 8, i64),
            max_timestamp: field!(MAX_TIMESTAMP_OFFSET, 8, i64),
            producer_id: field!(PRODUCER_ID_OFFSET, 8, i64),
            producer_epoch: field!(PRODUCER_EPOCH_OFFSET, 2, i16),
            base_sequence: field!(BASE_SEQUENCE_OFFSET, 4, i32),
            record_count,
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
        if self.compression_bits() > 4 {
            return Err("unknown compression codec in the batch attributes");
        }
        if u64::from(self.record_count) > u64::from(self.last_offset_delta) + 1 {
            return Err("record count exceeds the batch's offset range");
        }
        if self
            .base_offset
            .checked_add(u64::from(self.last_offset_delta) + 1)
            .is_none_or(|next| next > i64::MAX as u64)
        {
            return Err("batch offsets overflow Kafka's int64 offsets");
        }
        // No rule ties the maximum timestamp to the base: Kafka's writers keep max >= base, but
        // its readers (`DefaultRecordBatch.ensureValid`) check only size and CRC, and clients
        // have written batches with a maximum of 0 (sarama). The CRC covers both fields.
        Ok(())
    }
}

/// The few header fields a scan needs to step over a batch (and check that it continues the log),
/// read from its first 27 bytes without parsing the rest: reads skip most batches they meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchSpan {
    pub base_offset: u64,
    pub length: u32,
    pub partition_leader_epoch: i32,
    pub crc: u32,
    pub last_offset_delta: u32,
}

impl BatchSpan {
    pub(crate) fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta)
    }

    pub(crate) fn next_offset(&self) -> u64 {
        self.last_offset() + 1
    }

    pub(crate) fn total_len(&self) -> usize {
        PARTITION_LEADER_EPOCH_OFFSET + self.length as usize
    }
}

/// Bytes of a batch [`peek_span`] reads.
pub(crate) const SPAN_LEN: usize = LAST_OFFSET_DELTA_OFFSET + 4;

/// The [`BatchSpan`] at the start of `b`, with the structural checks of [`BatchHeader::parse`]
/// that concern these fields (magic, length, offsets); a batch that is served is parsed and
/// checked whole.
pub(crate) fn peek_span(b: &[u8]) -> Result<BatchSpan, &'static str> {
    let h = b
        .first_chunk::<SPAN_LEN>()
        .ok_or("batch header is truncated")?;
    if h[MAGIC_OFFSET] != MAGIC {
        return Err("not a Kafka RecordBatch v2 (magic is not 2)");
    }
    // `h` is an array: every field position is checked against its size when compiling.
    macro_rules! field {
        ($at:expr, $len:literal, $ty:ty) => {{
            let mut bytes = [0; $len];
            bytes.copy_from_slice(&h[$at..$at + $len]);
            <$ty>::from_be_bytes(bytes)
        }};
    }
    let (Ok(base_offset), Ok(length), Ok(last_offset_delta)) = (
        u64::try_from(field!(BASE_OFFSET_OFFSET, 8, i64)),
        u32::try_from(field!(LENGTH_OFFSET, 4, i32)),
        u32::try_from(field!(LAST_OFFSET_DELTA_OFFSET, 4, i32)),
    ) else {
        return Err("negative base offset, length, last offset delta or record count");
    };
    if length < MIN_BATCH_LENGTH_FIELD {
        return Err("batch length is smaller than a batch header");
    }
    if length as usize > MAX_BATCH_BYTES_LIMIT {
        return Err("batch length exceeds the format's maximum");
    }
    if base_offset
        .checked_add(u64::from(last_offset_delta) + 1)
        .is_none_or(|next| next > i64::MAX as u64)
    {
        return Err("batch offsets overflow Kafka's int64 offsets");
    }
    Ok(BatchSpan {
        base_offset,
        length,
        partition_leader_epoch: field!(PARTITION_LEADER_EPOCH_OFFSET, 4, i32),
        crc: field!(CRC_OFFSET, 4, u32),
        last_offset_delta,
    })
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

/// What the first bytes of a segment file hold if they are a batch of another format than Kafka's
/// RecordBatch v2, in words: Kafka's message sets v0/v1 or a later magic (the magic byte sits at
/// byte 16 in every Kafka format), or topiclog's pre-release format (little-endian, "version" 1 at
/// byte 16). `None` for magic 2 (a v2 batch, maybe damaged) and for anything unrecognisable.
pub(crate) fn describe_foreign_format(head: &[u8]) -> Option<String> {
    let magic = *head.get(MAGIC_OFFSET)?;
    let len = head.get(LENGTH_OFFSET..LENGTH_OFFSET + 4)?;
    let len = [len.first()?, len.get(1)?, len.get(2)?, len.get(3)?].map(|b| *b);
    let plausible = |n: u32| (12..=MAX_BATCH_BYTES_LIMIT as u32).contains(&n);
    match magic {
        MAGIC => None,
        0 | 1 if plausible(u32::from_be_bytes(len)) => Some(format!(
            "Kafka message format v{magic} (magic {magic}, written by Kafka before 0.11)"
        )),
        1 if plausible(u32::from_le_bytes(len)) => Some(
            "topiclog's pre-release segment format (little-endian batches, version 1), which \
             this version no longer reads"
                .into(),
        ),
        3..=9 if plausible(u32::from_be_bytes(len)) => Some(format!(
            "a Kafka record batch with magic {magic}, newer than this version reads"
        )),
        _ => None,
    }
}

/// A validated record batch: its CRC matched and its records parse. Cheap to clone; records are
/// zero-copy slices of its bytes (of the decompressed records, for a compressed batch).
#[derive(Clone, Debug)]
pub struct RecordBatch {
    header: BatchHeader,
    bytes: Bytes,
    /// The records section: a slice of `bytes`, or its decompressed form.
    records: Bytes,
    /// Where every [`MARK_STRIDE`]-th record starts in `records` (see [`record_marks`]), when
    /// a reader knows: lets [`RecordBatch::iter_from`] jump near its first record. Not part of
    /// the batch's value.
    marks: Option<std::sync::Arc<[u32]>>,
}

impl PartialEq for RecordBatch {
    fn eq(&self, other: &Self) -> bool {
        // `records` follows from `bytes`; `marks` is a reading aid.
        self.header == other.header && self.bytes == other.bytes
    }
}

impl Eq for RecordBatch {}

/// Records between two marks of [`record_marks`].
pub(crate) const MARK_STRIDE: u64 = 4;

/// Where records `MARK_STRIDE`, `2 * MARK_STRIDE`, ... start in `records` (a records section of
/// `count` records), found by stepping over each record by its length field; `None` if a length
/// runs past the end. What [`RecordRefs::skip_to`] would find stepping over them itself.
pub(crate) fn record_marks(records: &[u8], count: u32) -> Option<std::sync::Arc<[u32]>> {
    let mut marks = Vec::with_capacity((u64::from(count) / MARK_STRIDE) as usize);
    let mut pos = 0;
    for i in 1..u64::from(count) {
        skip_record(records, &mut pos)?;
        if i % MARK_STRIDE == 0 {
            marks.push(u32::try_from(pos).ok()?);
        }
    }
    Some(marks.into())
}

/// Where a batch's records are: its bytes after the header (zero-copy), or for a compressed
/// batch the decompressed stream, at most [`MAX_DECOMPRESSED_BATCH_BYTES`] long.
fn records_section(bytes: &Bytes, header: &BatchHeader) -> Result<Bytes, (usize, &'static str)> {
    let raw = bytes.slice(RECORDS_OFFSET.min(bytes.len())..);
    let codec =
        Compression::from_attributes(header.attributes).map_err(|r| (ATTRIBUTES_OFFSET, r))?;
    if codec == Compression::None {
        return Ok(raw);
    }
    // Every record takes at least 7 bytes: a count that cannot fit the cap is damage, found
    // before anything is decompressed.
    if u64::from(header.record_count) * 7 > MAX_DECOMPRESSED_BATCH_BYTES as u64 {
        return Err((RECORD_COUNT_OFFSET, "record count too large for a batch"));
    }
    // Codecs size their output by block (lz4: 64 KiB, zeroed): a small batch's records are
    // copied out at their exact length, so the block-sized buffer is freed at once and reused
    // by the next batch instead of a fresh, page-faulting one being held per batch; a large
    // batch's buffer is kept as it is (no copy).
    let mut out = Vec::new();
    match decompress(codec, &raw, MAX_DECOMPRESSED_BATCH_BYTES, &mut out) {
        Ok(()) if out.capacity() > 2 * out.len() => Ok(Bytes::copy_from_slice(&out)),
        Ok(()) => Ok(Bytes::from(out)),
        Err(CodecError::Unavailable(_)) => Err((
            ATTRIBUTES_OFFSET,
            "the batch is compressed with a codec this build leaves out (enable its Cargo feature)",
        )),
        Err(CodecError::TooLarge { .. }) => Err((
            RECORDS_OFFSET,
            "compressed records decompress past the 256 MiB batch limit",
        )),
        Err(CodecError::Corrupt(reason)) => Err((RECORDS_OFFSET, reason)),
    }
}

/// Check that `records` holds exactly `header.record_count` well-formed records with increasing
/// offset deltas within the batch's range. Errors carry a position within `records`.
fn check_records(records: &[u8], header: &BatchHeader) -> Result<(), (usize, &'static str)> {
    let mut pos = 0;
    let mut prev_delta: Option<u64> = None;
    for _ in 0..header.record_count {
        let at = pos;
        let parts =
            parse_record(records, &mut pos, records.len()).ok_or((at, "malformed record"))?;
        if parts.offset_delta > u64::from(header.last_offset_delta)
            || prev_delta.is_some_and(|p| parts.offset_delta <= p)
        {
            return Err((at, "record offset delta out of order or out of range"));
        }
        prev_delta = Some(parts.offset_delta);
    }
    if pos != records.len() {
        return Err((pos, "bytes left over after the last record"));
    }
    Ok(())
}

/// Validate `bytes` as exactly one batch without decompressing it: header, length and CRC, and
/// for an uncompressed batch the framing of every record. What recovery checks of each batch.
pub(crate) fn validate_batch(bytes: &[u8]) -> Result<BatchHeader, (usize, &'static str)> {
    let header = BatchHeader::parse(bytes).map_err(|r| (0, r))?;
    if header.total_len() != bytes.len() {
        return Err((
            LENGTH_OFFSET,
            "batch length does not match the bytes available",
        ));
    }
    if !crc_matches(bytes, &header) {
        return Err((CRC_OFFSET, "CRC mismatch"));
    }
    if header.compression_bits() == 0 {
        let records = bytes.get(RECORDS_OFFSET..).unwrap_or_default();
        check_records(records, &header).map_err(|(at, r)| (RECORDS_OFFSET + at, r))?;
    }
    Ok(header)
}

impl RecordBatch {
    /// Validate `bytes` as exactly one Kafka RecordBatch v2: length, CRC-32C, magic, attributes
    /// and the framing of every record (decompressing a compressed batch, with its size capped).
    /// On failure returns the byte position (relative to `bytes`; the start of the records for
    /// damage inside a compressed batch's records) and a reason.
    pub fn decode(bytes: Bytes) -> Result<RecordBatch, (usize, &'static str)> {
        let header = BatchHeader::parse(&bytes).map_err(|r| (0, r))?;
        if header.total_len() != bytes.len() {
            return Err((
                LENGTH_OFFSET,
                "batch length does not match the bytes available",
            ));
        }
        if !crc_matches(&bytes, &header) {
            return Err((CRC_OFFSET, "CRC mismatch"));
        }
        // Compaction keeps a batch's offset range when it drops records, so the last record may
        // sit below `last offset delta` (the framing check keeps it from exceeding it).
        RecordBatch::from_verified(bytes, header, true)
    }

    /// A batch whose CRC the caller has already checked against `bytes` (or vouched for from a
    /// cache of batches verified in this process) and whose header is `header`, parsed from
    /// `bytes`: decompressed if need be, its record framing checked only when `check_framing`.
    /// A batch built without the framing check must only be read through [`iter`](Self::iter),
    /// which checks each record as it parses it.
    pub(crate) fn from_verified(
        bytes: Bytes,
        header: BatchHeader,
        check_framing: bool,
    ) -> Result<RecordBatch, (usize, &'static str)> {
        if header.total_len() != bytes.len() {
            return Err((
                LENGTH_OFFSET,
                "batch length does not match the bytes available",
            ));
        }
        let records = records_section(&bytes, &header)?;
        if check_framing {
            // A position inside a compressed stream's output means nothing in the file: report
            // the stream's start.
            let compressed = header.compression_bits() != 0;
            check_records(&records, &header)
                .map_err(|(at, r)| (RECORDS_OFFSET + if compressed { 0 } else { at }, r))?;
        }
        Ok(RecordBatch {
            header,
            bytes,
            records,
            marks: None,
        })
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
        RecordBatch::build_compressed(records, base_offset, default_timestamp, Compression::None)
    }

    /// [`build`](Self::build) with the records compressed as one stream with `compression`, as
    /// Kafka's producers write them.
    ///
    /// # Errors
    /// As [`build`](Self::build); [`Error::InvalidConfig`](crate::Error::InvalidConfig) for a
    /// codec this build leaves out (see [`Compression::is_available`]).
    ///
    /// # Examples
    /// ```
    /// use topiclog::{segment::RecordBatch, Compression, Record};
    /// let records = vec![Record::new("{\"event\":\"page_view\"}"); 100];
    /// let batch = RecordBatch::build_compressed(&records, 0, 1_000, Compression::Lz4)?;
    /// assert_eq!(batch.header().compression_bits(), 3);
    /// assert!(batch.as_bytes().len() < 61 + 100 * 20);
    /// assert_eq!(batch.records().count(), 100);
    /// # Ok::<(), topiclog::Error>(())
    /// ```
    pub fn build_compressed<R: Borrow<Record>>(
        records: &[R],
        base_offset: u64,
        default_timestamp: i64,
        compression: Compression,
    ) -> crate::Result<RecordBatch> {
        if records.is_empty() {
            return Err(crate::Error::EmptyBatch);
        }
        let mut meta = BatchMeta::new(default_timestamp);
        meta.compression = compression;
        let len = encoded_batch_len(records, &meta);
        if len > MAX_BATCH_BYTES_LIMIT || records.len() > i32::MAX as usize {
            return Err(crate::Error::RecordTooLarge {
                size: len,
                max: MAX_BATCH_BYTES_LIMIT,
            });
        }
        let mut buf = Vec::with_capacity(len);
        encode_batch(&mut buf, records, &meta).map_err(codec_error)?;
        patch_base_offset(&mut buf, base_offset);
        RecordBatch::decode(Bytes::from(buf)).map_err(|(at, r)| crate::Error::Corrupt {
            path: Default::default(),
            position: at as u64,
            reason: r.into(),
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

    /// Number of records stored (control records included).
    pub fn record_count(&self) -> u32 {
        self.header.record_count
    }

    /// Whether this is a control batch (Kafka's transaction markers): [`records`](Self::records)
    /// yields nothing for it.
    pub fn is_control(&self) -> bool {
        self.header.is_control()
    }

    /// The raw bytes of the batch as stored.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The batch's data records in offset order; none for a control batch.
    pub fn records(&self) -> Records {
        let h = &self.header;
        Records {
            bytes: self.records.clone(),
            pos: 0,
            remaining: if h.is_control() { 0 } else { h.record_count },
            base_offset: h.base_offset,
            base_timestamp: h.base_timestamp,
            log_append_time: h.is_log_append_time().then_some(h.max_timestamp),
        }
    }
}

impl RecordBatch {
    /// The batch's data records in offset order, borrowed: each [`RecordRef`] holds `&[u8]`
    /// slices of the batch (no allocation, no reference counting per record). None for a control
    /// batch.
    ///
    /// Each record is parsed exactly once, and checked as it is parsed (framing, header keys
    /// being UTF-8, offset deltas rising within the batch's range); the end of the batch is
    /// checked too (exactly the record count, no bytes left over). Damage yields one `Err`
    /// ([`Error::Corrupt`](crate::Error::Corrupt), its position relative to the batch and its
    /// path empty: a batch does not know its file), after which the iterator ends. A batch from
    /// [`RecordBatch::decode`] or a [`Batches`](crate::Batches) was checked whole already, so
    /// this never fails for one; a [`LazyBatches`](crate::LazyBatches) batch is checked here.
    ///
    /// # Examples
    /// ```
    /// use topiclog::{segment::RecordBatch, Record};
    /// let records: Vec<Record> = (0..3).map(|i| Record::new(format!("v{i}"))).collect();
    /// let batch = RecordBatch::build(&records, 100, 1_000)?;
    /// let mut total = 0;
    /// for r in batch.iter() {
    ///     let r = r?;
    ///     total += r.value().map_or(0, |v| v.len());
    /// }
    /// assert_eq!(total, 6);
    /// // From an offset: the records before it are stepped over by their length fields.
    /// let from = batch.iter_from(102).map(|r| r.map(|r| r.offset())).collect::<Result<Vec<_>, _>>()?;
    /// assert_eq!(from, [102]);
    /// # Ok::<(), topiclog::Error>(())
    /// ```
    pub fn iter(&self) -> RecordRefs<'_> {
        // A control batch's records are transaction markers, never data: none are read.
        self.refs(!self.header.is_control())
    }

    /// The records of a control batch: Kafka's transaction markers (key: `ControlRecordType`,
    /// a version and a type, 0 abort, 1 commit; value: `EndTransactionMarker`, a version and the
    /// coordinator epoch), which [`iter`](Self::iter) and [`records`](Self::records) never yield;
    /// none for any other batch. For tools that show them, as `kafka-dump-log` does.
    pub fn control_records(&self) -> RecordRefs<'_> {
        self.refs(self.header.is_control())
    }

    /// The batch's records, or none.
    fn refs(&self, yield_records: bool) -> RecordRefs<'_> {
        let h = &self.header;
        let control = !yield_records;
        RecordRefs {
            marks: self.marks.as_deref().unwrap_or_default(),
            buf: if control { &[] } else { &self.records },
            pos: 0,
            remaining: if control { 0 } else { h.record_count },
            index: 0,
            prev_delta: None,
            dense: u64::from(h.record_count) == u64::from(h.last_offset_delta) + 1,
            base_offset: h.base_offset,
            base_timestamp: h.base_timestamp,
            last_offset_delta: h.last_offset_delta,
            log_append_time: h.is_log_append_time().then_some(h.max_timestamp),
            error_base: if h.compression_bits() != 0 {
                None
            } else {
                Some(RECORDS_OFFSET)
            },
            state: IterState::Running,
        }
    }

    /// [`iter`](Self::iter) from the first record at or after `offset`: the records before it
    /// are stepped over by their length fields, without being decoded (in a batch compaction
    /// left gaps in, their offset deltas are read too).
    pub fn iter_from(&self, offset: u64) -> RecordRefs<'_> {
        let mut it = self.iter();
        it.skip_to(offset);
        it
    }

    /// Whether the batch's records lie uncompressed in its bytes, at every offset of its range
    /// (no compaction gaps): the batches [`record_marks`] helps.
    pub(crate) fn markable(&self) -> bool {
        let h = &self.header;
        h.compression_bits() == 0
            && !h.is_control()
            && u64::from(h.record_count) == u64::from(h.last_offset_delta) + 1
    }

    /// The batch's [`record_marks`], computed now (`None` if its records are damaged).
    pub(crate) fn compute_marks(&self) -> Option<std::sync::Arc<[u32]>> {
        record_marks(&self.records, self.header.record_count)
    }

    /// Attach `marks`, the [`record_marks`] of this batch's records (computed from the same
    /// bytes, which the caller's cache vouches for).
    pub(crate) fn set_marks(&mut self, marks: std::sync::Arc<[u32]>) {
        self.marks = Some(marks);
    }

    /// Whether the batch holds a data record at or after `offset`. Damage in the records counts
    /// as holding one, so that whoever reads the batch meets the error.
    pub(crate) fn holds_records_from(&self, offset: u64) -> bool {
        let h = &self.header;
        let dense = u64::from(h.record_count) == u64::from(h.last_offset_delta) + 1;
        !self.is_control()
            && self.record_count() > 0
            // A batch without compaction gaps holds a record at every offset of its range.
            && (self.base_offset() >= offset
                || (dense && offset <= self.last_offset())
                || self.iter_from(offset).next().is_some())
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
    base_timestamp: i64,
    /// For a log-append-time batch, the time every record gets (the batch's maximum).
    log_append_time: Option<i64>,
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
            timestamp: self
                .log_append_time
                .unwrap_or_else(|| self.base_timestamp.wrapping_add(p.timestamp_delta)),
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IterState {
    Running,
    /// Every record was read and the end checked, or an error was returned.
    Done,
    /// Damage found while stepping over records: returned by the next call.
    Failed(usize, &'static str),
}

/// Iterator over a batch's records as [`RecordRef`]s, from [`RecordBatch::iter`]: each item
/// is a record or the one error that ends the iteration.
#[derive(Clone, Debug)]
pub struct RecordRefs<'a> {
    buf: &'a [u8],
    /// The batch's [`record_marks`], if known (else empty).
    marks: &'a [u32],
    pos: usize,
    /// Records not yet read or stepped over.
    remaining: u32,
    /// Records read or stepped over.
    index: u64,
    prev_delta: Option<u64>,
    /// Whether the batch holds a record at every offset of its range (no compaction gaps): the
    /// i-th record then has offset delta i, which is what its checks come down to.
    dense: bool,
    base_offset: u64,
    base_timestamp: i64,
    last_offset_delta: u32,
    log_append_time: Option<i64>,
    /// Where the records section starts in the batch (for error positions); `None` for a
    /// compressed batch, whose positions mean nothing in the file (errors give the stream's
    /// start).
    error_base: Option<usize>,
    state: IterState,
}

impl<'a> RecordRefs<'a> {
    fn error(&mut self, at: usize, reason: &'static str) -> crate::Error {
        self.state = IterState::Done;
        let position = match self.error_base {
            Some(base) => base + at,
            None => RECORDS_OFFSET,
        };
        crate::Error::Corrupt {
            path: Default::default(),
            position: position as u64,
            reason: format!(
                "{reason} (record {} of the batch at offset {})",
                self.index, self.base_offset
            ),
        }
    }

    /// Step over the records below `offset` by their length fields (see
    /// [`RecordBatch::iter_from`]). Damage met on the way is returned by the next
    /// [`next`](Iterator::next).
    pub fn skip_to(&mut self, offset: u64) {
        if self.state != IterState::Running || offset <= self.base_offset {
            return;
        }
        let target = offset - self.base_offset;
        if self.dense {
            // The i-th record is at offset delta i: skip by count, first to the last mark at or
            // before the target (marks are where this loop would arrive).
            let k = (target / MARK_STRIDE).min(self.marks.len() as u64);
            if self.index == 0 && k > 0 {
                let skip = k * MARK_STRIDE;
                let at = self
                    .marks
                    .get(k as usize - 1)
                    .map_or(usize::MAX, |&m| m as usize);
                if skip <= u64::from(self.remaining) && at <= self.buf.len() {
                    self.pos = at;
                    self.index = skip;
                    self.remaining -= skip as u32;
                }
            }
            while self.index < target && self.remaining > 0 {
                let at = self.pos;
                if skip_record(self.buf, &mut self.pos).is_none() {
                    self.state = IterState::Failed(at, "malformed record");
                    return;
                }
                self.remaining -= 1;
                self.index += 1;
            }
            if self.index > 0 {
                self.prev_delta = Some(self.index - 1);
            }
            return;
        }
        while self.remaining > 0 {
            let Some((delta, end)) = peek_offset_delta(self.buf, self.pos) else {
                self.state = IterState::Failed(self.pos, "malformed record");
                return;
            };
            if delta >= target {
                return;
            }
            if self.prev_delta.is_some_and(|p| delta <= p) {
                self.state =
                    IterState::Failed(self.pos, "record offset delta out of order or out of range");
                return;
            }
            self.prev_delta = Some(delta);
            self.pos = end;
            self.remaining -= 1;
            self.index += 1;
        }
    }
}

impl<'a> Iterator for RecordRefs<'a> {
    type Item = crate::Result<RecordRef<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self.state {
            IterState::Running => {}
            IterState::Done => return None,
            IterState::Failed(at, reason) => return Some(Err(self.error(at, reason))),
        }
        if self.remaining == 0 {
            self.state = IterState::Done;
            if self.pos != self.buf.len() {
                return Some(Err(
                    self.error(self.pos, "bytes left over after the last record")
                ));
            }
            return None;
        }
        let at = self.pos;
        let Some(p) = parse_record(self.buf, &mut self.pos, self.buf.len()) else {
            return Some(Err(self.error(at, "malformed record")));
        };
        let in_order = if self.dense {
            p.offset_delta == self.index
        } else {
            p.offset_delta <= u64::from(self.last_offset_delta)
                && self.prev_delta.is_none_or(|d| p.offset_delta > d)
        };
        if !in_order {
            return Some(Err(
                self.error(at, "record offset delta out of order or out of range")
            ));
        }
        self.prev_delta = Some(p.offset_delta);
        self.remaining -= 1;
        self.index += 1;
        let buf = self.buf;
        let slice = |r: std::ops::Range<usize>| buf.get(r).unwrap_or_default();
        Some(Ok(RecordRef {
            offset: self.base_offset + p.offset_delta,
            timestamp: self
                .log_append_time
                .unwrap_or_else(|| self.base_timestamp.wrapping_add(p.timestamp_delta)),
            key: p.key.map(slice),
            value: p.value.map(slice),
            headers: slice(p.headers),
            header_count: p.header_count,
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.state {
            IterState::Running => (0, Some(self.remaining as usize + 1)),
            IterState::Done => (0, Some(0)),
            IterState::Failed(..) => (1, Some(1)),
        }
    }
}

impl std::iter::FusedIterator for RecordRefs<'_> {}

/// Fields of a batch that the appender chooses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchMeta {
    pub default_timestamp: i64,
    pub log_append_time: bool,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub compression: Compression,
}

impl BatchMeta {
    pub(crate) fn new(default_timestamp: i64) -> Self {
        BatchMeta {
            default_timestamp,
            log_append_time: false,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            compression: Compression::None,
        }
    }
}

thread_local! {
    /// Records of a batch being compressed, encoded here first: reused, so a compressed append
    /// allocates nothing per batch once warm.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Write `records_into` (which appends encoded records to the buffer it is given) after a
/// header's room at the end of `buf`, compressed with `codec` when it is not `None`. Returns
/// where the batch starts in `buf`. On error `buf` is as it was.
fn put_records(
    buf: &mut Vec<u8>,
    codec: Compression,
    records_into: impl FnOnce(&mut Vec<u8>),
) -> Result<usize, CodecError> {
    let start = buf.len();
    buf.resize(start + BATCH_HEADER_LEN, 0);
    if codec == Compression::None {
        records_into(buf);
        return Ok(start);
    }
    SCRATCH
        .with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.clear();
            records_into(&mut scratch);
            let result = compress(codec, &scratch, buf);
            if scratch.capacity() > 4 << 20 {
                // Keep the scratch of ordinary batches, not of a rare huge one.
                *scratch = Vec::new();
            }
            result
        })
        .inspect_err(|_| buf.truncate(start))?;
    Ok(start)
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
        n += super::varint::varint_len(body as i32) + body;
    }
    n
}

/// Encode `records` as one batch (base offset 0, CRC computed) at the end of `buf`, its records
/// compressed with `meta.compression`. The caller has checked that `records` is non-empty and
/// fits `int32` offset deltas.
///
/// # Errors
/// [`CodecError::Unavailable`] for a codec this build leaves out (`buf` is then unchanged).
pub(crate) fn encode_batch<R: Borrow<Record>>(
    buf: &mut Vec<u8>,
    records: &[R],
    meta: &BatchMeta,
) -> Result<(), CodecError> {
    let first_ts = records
        .first()
        .map_or(0, |r| record_timestamp(r.borrow(), meta));
    let mut max_ts = i64::MIN;
    let start = put_records(buf, meta.compression, |out| {
        for (i, r) in records.iter().enumerate() {
            let r = r.borrow();
            let ts = record_timestamp(r, meta);
            max_ts = max_ts.max(ts);
            r.encode(out, ts.wrapping_sub(first_ts), i as u32);
        }
    })?;
    let mut attributes = meta.compression.attribute_bits();
    if meta.log_append_time {
        attributes |= ATTR_LOG_APPEND_TIME;
    }
    let fields = BatchHeader {
        base_offset: 0,
        length: 0,
        partition_leader_epoch: 0,
        magic: MAGIC,
        crc: 0,
        attributes,
        last_offset_delta: records.len().saturating_sub(1) as u32,
        base_timestamp: first_ts,
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
    Ok(())
}

/// Fill in the header of the encoded batch `batch` (the whole batch, records in place) from
/// `fields`: the length from `batch`'s size, magic 2, every other field, then the CRC-32C.
/// (`fields.length`, `crc` and `magic` are not used.) The one writer of the header layout.
pub(super) fn write_header(batch: &mut [u8], fields: &BatchHeader) {
    let f = fields;
    let length = batch.len().saturating_sub(PARTITION_LEADER_EPOCH_OFFSET);
    let length = i32::try_from(length).unwrap_or(i32::MAX);
    let Some((h, records)) = batch.split_first_chunk_mut::<BATCH_HEADER_LEN>() else {
        debug_assert!(false, "callers make room for the header");
        return;
    };
    // `h` is an array: every position below is checked against its size when compiling. The
    // unsigned fields were parsed from (or built within) Kafka's non-negative int ranges.
    macro_rules! put {
        ($at:expr, $len:literal, $v:expr) => {{
            h[$at..$at + $len].copy_from_slice(&$v.to_be_bytes());
        }};
    }
    put!(BASE_OFFSET_OFFSET, 8, f.base_offset as i64);
    put!(LENGTH_OFFSET, 4, length);
    put!(PARTITION_LEADER_EPOCH_OFFSET, 4, f.partition_leader_epoch);
    h[MAGIC_OFFSET] = MAGIC;
    put!(ATTRIBUTES_OFFSET, 2, f.attributes);
    put!(LAST_OFFSET_DELTA_OFFSET, 4, f.last_offset_delta as i32);
    put!(BASE_TIMESTAMP_OFFSET, 8, f.base_timestamp);
    put!(MAX_TIMESTAMP_OFFSET, 8, f.max_timestamp);
    put!(PRODUCER_ID_OFFSET, 8, f.producer_id);
    put!(PRODUCER_EPOCH_OFFSET, 2, f.producer_epoch);
    put!(BASE_SEQUENCE_OFFSET, 4, f.base_sequence);
    put!(RECORD_COUNT_OFFSET, 4, f.record_count as i32);
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    crc.update(&h[BATCH_PREFIX_LEN..]);
    crc.update(records);
    put!(CRC_OFFSET, 4, crc.finalize() as u32);
}

/// Encode the `retained` records of a batch whose header is `original` as a new batch at the end
/// of `buf`, compressed with `compression`: same base offset, offset range (`last offset
/// delta`), attributes (but the codec) and producer fields, so offsets and the log's shape
/// survive; record count, timestamps, length and CRC describe what is left, as Kafka's cleaner
/// rebuilds a batch (`MemoryRecords.filterTo`): the base timestamp is the first kept record's
/// (or the delete horizon, when the batch has one), the maximum the kept records'. Used by
/// compaction. `retained` must be in offset order and lie inside `original`'s offset range;
/// empty, it makes an empty batch (no records, `original`'s timestamps) that still spans the
/// offset range, which compaction uses to keep a cleaned log's offsets contiguous.
///
/// # Errors
/// [`CodecError::Unavailable`] for a codec this build leaves out (`buf` is then unchanged).
pub(crate) fn encode_retained(
    buf: &mut Vec<u8>,
    original: &BatchHeader,
    retained: &[StoredRecord],
    compression: Compression,
) -> Result<(), CodecError> {
    let horizon = original.delete_horizon();
    let base_ts = match (horizon, retained.first()) {
        (Some(h), _) => h,
        (None, Some(first)) => first.timestamp,
        (None, None) => original.base_timestamp,
    };
    let mut max_ts = i64::MIN;
    let start = put_records(buf, compression, |out| {
        for r in retained {
            max_ts = max_ts.max(r.timestamp);
            r.encode(
                out,
                r.timestamp.wrapping_sub(base_ts),
                r.offset - original.base_offset,
            );
        }
    })?;
    let fields = BatchHeader {
        base_timestamp: base_ts,
        max_timestamp: if original.is_log_append_time() || retained.is_empty() {
            original.max_timestamp
        } else {
            max_ts
        },
        attributes: (original.attributes & !ATTR_COMPRESSION_MASK) | compression.attribute_bits(),
        record_count: retained.len() as u32,
        ..*original
    };
    #[expect(
        clippy::indexing_slicing,
        reason = "`start` was the buffer's length before it grew by a header and the records"
    )]
    write_header(&mut buf[start..], &fields);
    Ok(())
}

/// The crate's error for a codec error while encoding.
pub(crate) fn codec_error(e: CodecError) -> crate::Error {
    match e {
        CodecError::Unavailable(c) => codec_unavailable(c),
        other => crate::Error::config("compression", other.to_string()),
    }
}

/// The error for a codec this build leaves out: which Cargo feature brings it in.
pub(crate) fn codec_unavailable(c: Compression) -> crate::Error {
    crate::Error::config("compression", missing_codec(c))
}

/// Words for a codec this build leaves out, naming the Cargo feature that brings it in.
pub(crate) fn missing_codec(c: Compression) -> String {
    format!("the {c} codec is not built in: enable topiclog's \"{c}\" Cargo feature")
}

/// Whether `bytes` is exactly the batch `header` describes and its CRC-32C matches: every field
/// from the attributes on is then what the writer wrote. Checks no record framing.
pub(crate) fn crc_matches(bytes: &[u8], header: &BatchHeader) -> bool {
    span_crc_matches(bytes, header.total_len(), header.crc)
}

/// [`crc_matches`] from a batch's length and stored CRC alone (a [`BatchSpan`]'s).
pub(crate) fn span_crc_matches(bytes: &[u8], total_len: usize, crc: u32) -> bool {
    bytes.len() == total_len
        && bytes
            .get(BATCH_PREFIX_LEN..)
            .is_some_and(|covered| crc32c(covered) == crc)
}

/// CRC-32C (Castagnoli), the checksum of Kafka's record batches, computed with hardware
/// acceleration where the CPU has it.
///
/// ```
/// assert_eq!(topiclog::internals::format::crc32c(b"123456789"), 0xE306_9283);
/// ```
#[inline]
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// Give an encoded batch (at least a header's worth of bytes) a new base offset. (Kafka's CRC
/// does not cover the base offset, so nothing else changes.) Returns `false`, changing nothing,
/// if `batch` is shorter than a batch header or `base_offset` is past Kafka's `int64` range.
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
    if batch.len() < BATCH_HEADER_LEN || base_offset > i64::MAX as u64 {
        return false;
    }
    patch_base_offset(batch, base_offset);
    true
}

/// Set the base offset of an encoded batch. Bytes too short to hold a base offset are left alone
/// (callers pass encoded batches).
pub(crate) fn patch_base_offset(batch: &mut [u8], base_offset: u64) {
    let Some(field) = batch.first_chunk_mut::<8>() else {
        debug_assert!(false, "not an encoded batch");
        return;
    };
    *field = base_offset.to_be_bytes();
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
        encode_batch(&mut buf, records, &meta).unwrap();
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

    /// Every flip is detected except in the two fields Kafka's CRC leaves out (the base offset
    /// and the partition leader epoch), which decode to exactly the flipped value: the log checks
    /// base offsets against their neighbours instead.
    #[test]
    fn every_bit_flip_outside_the_offset_and_epoch_is_detected() {
        let bytes = encode(&[Record::new("hello").with_key("k")], 12345);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.to_vec();
                b[i] ^= 1 << bit;
                let decoded = RecordBatch::decode(Bytes::from(b));
                if i == 0 && bit == 7 {
                    assert!(decoded.is_err(), "a negative base offset is refused");
                } else if i < LENGTH_OFFSET {
                    let h = *decoded.expect("an offset flip decodes").header();
                    assert_eq!(h.base_offset, 12345 ^ (1u64 << (8 * (7 - i) + bit)));
                } else if (PARTITION_LEADER_EPOCH_OFFSET..MAGIC_OFFSET).contains(&i) {
                    let h = *decoded.expect("an epoch flip decodes").header();
                    assert_ne!(h.partition_leader_epoch, 0);
                } else {
                    assert!(decoded.is_err(), "flip at {i}:{bit}");
                }
            }
        }
    }

    /// A batch as Kafka's `DefaultRecordBatch` lays it out, field by field (big-endian header,
    /// CRC-32C over attributes..end, zig-zag varint record framing).
    #[test]
    fn layout_is_kafkas() {
        let r = Record::new("v").with_key("k").with_timestamp(1000);
        let b = RecordBatch::build(&[r], 7, 0).unwrap();
        let b = b.as_bytes();
        assert_eq!(b.len(), 61 + 9);
        assert_eq!(b[0..8], 7i64.to_be_bytes());
        assert_eq!(b[8..12], ((b.len() - 12) as i32).to_be_bytes());
        assert_eq!(b[12..16], 0i32.to_be_bytes(), "partition leader epoch");
        assert_eq!(b[16], 2, "magic");
        assert_eq!(b[17..21], crc32c(&b[21..]).to_be_bytes());
        assert_eq!(b[21..23], 0i16.to_be_bytes(), "attributes");
        assert_eq!(b[23..27], 0i32.to_be_bytes(), "last offset delta");
        assert_eq!(b[27..35], 1000i64.to_be_bytes(), "base timestamp");
        assert_eq!(b[35..43], 1000i64.to_be_bytes(), "max timestamp");
        assert_eq!(b[43..51], (-1i64).to_be_bytes(), "producer id");
        assert_eq!(b[51..53], (-1i16).to_be_bytes(), "producer epoch");
        assert_eq!(b[53..57], (-1i32).to_be_bytes(), "base sequence");
        assert_eq!(b[57..61], 1i32.to_be_bytes(), "record count");
        // length 8 (zig-zag 16), attributes 0, timestamp delta 0, offset delta 0, key length 1
        // (zig-zag 2) "k", value length 1 "v", no headers.
        assert_eq!(
            b[61..],
            [16, 0, 0, 0, 2, b'k', 2, b'v', 0][..],
            "{:?}",
            &b[61..]
        );
        assert_eq!(crc32c(b"123456789"), 0xE306_9283, "CRC-32C check value");
    }

    /// The span a scan steps with agrees with the whole header wherever the header parses, and
    /// refuses whatever the header's checks on its fields refuse.
    #[test]
    fn spans_agree_with_headers() {
        let bytes = encode(&[Record::new("hello").with_key("k"), Record::new("x")], 99);
        for i in 0..BATCH_HEADER_LEN {
            for bit in 0..8 {
                let mut b = bytes.to_vec();
                b[i] ^= 1 << bit;
                let span = peek_span(&b);
                if let Ok(h) = BatchHeader::parse(&b) {
                    let s = span.expect("a header that parses has a span");
                    assert_eq!(
                        (s.base_offset, s.length, s.partition_leader_epoch, s.crc),
                        (h.base_offset, h.length, h.partition_leader_epoch, h.crc)
                    );
                    assert_eq!(
                        (s.next_offset(), s.total_len()),
                        (h.next_offset(), h.total_len())
                    );
                }
                // The span's checks are a subset of the header's: what it refuses, the header
                // refuses too.
                if span.is_err() {
                    assert!(BatchHeader::parse(&b).is_err(), "flip {i}:{bit}");
                }
            }
        }
        assert!(peek_span(&bytes[..SPAN_LEN - 1]).is_err());
    }

    #[test]
    fn foreign_magic_is_refused_before_anything_else() {
        let mut b = encode(&[Record::new("x")], 0).to_vec();
        for magic in [0u8, 1, 3] {
            b[MAGIC_OFFSET] = magic;
            assert!(matches!(peek_frame(&b), Frame::Invalid(r) if r.contains("magic")));
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
        b[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(peek_frame(&b), Frame::Invalid(_)));
    }
    /// A batch's own records and every `iter_from` suffix, borrowed, as plain values.
    type Plain = (
        u64,
        i64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(String, Option<Vec<u8>>)>,
    );

    fn plain_owned(r: &StoredRecord) -> Plain {
        (
            r.offset(),
            r.timestamp(),
            r.key().map(|k| k.to_vec()),
            r.value().map(|v| v.to_vec()),
            r.headers()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect(),
        )
    }

    fn plain_ref(r: &RecordRef<'_>) -> Plain {
        (
            r.offset(),
            r.timestamp(),
            r.key().map(<[u8]>::to_vec),
            r.value().map(<[u8]>::to_vec),
            r.headers()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect(),
        )
    }

    /// The borrowed records of `batch` (and from each offset of its range) are exactly its owned
    /// records, with no error; and the batch read without its framing checked gives the same.
    fn assert_iter_matches(batch: &RecordBatch) {
        let owned: Vec<Plain> = batch.records().map(|r| plain_owned(&r)).collect();
        let lazy = RecordBatch::from_verified(batch.as_bytes().clone(), *batch.header(), false)
            .expect("a valid batch");
        // With record marks, as a segment's point reads attach them.
        let mut marked = lazy.clone();
        if marked.markable() {
            marked.set_marks(marked.compute_marks().expect("a valid batch has marks"));
        }
        for b in [batch, &lazy, &marked] {
            let borrowed: Vec<Plain> = b.iter().map(|r| plain_ref(&r.unwrap())).collect();
            assert_eq!(borrowed, owned);
            for from in batch.base_offset()..=batch.next_offset() {
                let want: Vec<&Plain> = owned.iter().filter(|p| p.0 >= from).collect();
                let got: Vec<Plain> = b.iter_from(from).map(|r| plain_ref(&r.unwrap())).collect();
                assert_eq!(got.iter().collect::<Vec<_>>(), want, "from {from}");
                assert_eq!(b.holds_records_from(from), !want.is_empty(), "from {from}");
            }
        }
    }

    fn arb_record() -> impl proptest::strategy::Strategy<Value = Record> {
        use proptest::prelude::*;
        let bytes = || proptest::collection::vec(any::<u8>(), 0..40);
        (
            proptest::option::of(bytes()),
            proptest::option::of(bytes()),
            proptest::option::of(-5_000i64..5_000),
            proptest::collection::vec(("[a-z\\u{e9}]{0,6}", proptest::option::of(bytes())), 0..3),
        )
            .prop_map(|(k, v, ts, hs)| {
                let mut r = Record::default().with_value(v.map(Bytes::from));
                if let Some(k) = k {
                    r = r.with_key(k);
                }
                if let Some(ts) = ts {
                    r = r.with_timestamp(1_000_000 + ts);
                }
                for (hk, hv) in hs {
                    r = r.with_header(hk, hv.map(Bytes::from));
                }
                r
            })
    }

    proptest::proptest! {
        /// `iter` and `iter_from` yield exactly what `records` yields, for batches with keys,
        /// values, nulls and headers, compressed with every codec in the build, and with
        /// compaction gaps (records dropped inside the offset range, kept by `encode_retained`).
        #[test]
        fn borrowed_records_are_the_owned_ones(
            records in proptest::collection::vec(arb_record(), 1..20),
            keep in proptest::collection::vec(proptest::bool::ANY, 20),
            base in 0u64..1_000_000,
            codec in 0usize..5,
            log_append_time in proptest::bool::ANY,
        ) {
            let codec = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd][codec];
            let codec = if codec.is_available() { codec } else { Compression::None };
            let mut meta = BatchMeta::new(999);
            meta.compression = codec;
            meta.log_append_time = log_append_time;
            let mut buf = Vec::new();
            encode_batch(&mut buf, &records, &meta).unwrap();
            patch_base_offset(&mut buf, base);
            let batch = RecordBatch::decode(Bytes::from(buf)).unwrap();
            assert_iter_matches(&batch);
            // Compaction: keep a subset (maybe none) inside the same offset range.
            let retained: Vec<StoredRecord> = batch
                .records()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(r, _)| r)
                .collect();
            let mut buf = Vec::new();
            encode_retained(&mut buf, batch.header(), &retained, codec).unwrap();
            let compacted = RecordBatch::decode(Bytes::from(buf)).unwrap();
            assert_eq!(compacted.next_offset(), batch.next_offset());
            assert_iter_matches(&compacted);
        }
    }

    /// `bytes` with its CRC recomputed (and its length field set from its size): a batch whose
    /// checksum vouches for whatever it holds.
    fn recrc(mut b: Vec<u8>) -> Bytes {
        let len = (b.len() - PARTITION_LEADER_EPOCH_OFFSET) as i32;
        b[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c(&b[BATCH_PREFIX_LEN..]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(b)
    }

    /// Marks are where stepping over the records lands: record `4k` starts at mark `k - 1`.
    #[test]
    fn marks_are_record_starts() {
        let records: Vec<Record> = (0..10).map(|i| Record::new("x".repeat(i))).collect();
        let batch = RecordBatch::decode(encode(&records, 0)).unwrap();
        let marks = batch.compute_marks().unwrap();
        assert_eq!(marks.len(), 2);
        let mut pos = 0;
        let mut starts = Vec::new();
        for _ in 0..10 {
            starts.push(pos as u32);
            skip_record(&batch.records, &mut pos).unwrap();
        }
        assert_eq!(&marks[..], &[starts[4], starts[8]]);
        assert_eq!(
            RecordBatch::decode(encode(&records[..1], 0))
                .unwrap()
                .compute_marks()
                .unwrap()
                .len(),
            0
        );
    }

    /// Damage in the records of a CRC-valid batch (a crafted file) is an `Err` from `iter`,
    /// never a panic and never records silently missing: a bad length, a record cut short by
    /// the count, bytes left over, offset deltas out of order. `decode` refuses every one.
    #[test]
    fn framing_damage_in_a_crc_valid_batch_is_an_error() {
        let records = [
            Record::new("aaaa"),
            Record::new("bbbb"),
            Record::new("cccc"),
        ];
        let good = encode(&records, 10).to_vec();
        let first_len_at = RECORDS_OFFSET;
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        // The second record's length claims more than it holds.
        let mut b = good.clone();
        let rec_len = (b[first_len_at] / 2) as usize + 1;
        b[first_len_at + rec_len] += 2;
        cases.push(("bad length", b));
        // One byte more after the last record.
        let mut b = good.clone();
        b.push(0);
        cases.push(("left over", b));
        // The count says four records.
        let mut b = good.clone();
        b[RECORD_COUNT_OFFSET + 3] = 4;
        b[LAST_OFFSET_DELTA_OFFSET + 3] = 3;
        cases.push(("count too large", b));
        // The second record's offset delta is 2 (zig-zag 4): out of order for a dense batch.
        let mut b = good.clone();
        b[first_len_at + rec_len + 3] = 4;
        cases.push(("delta", b));
        for (what, b) in cases {
            let bytes = recrc(b);
            assert!(RecordBatch::decode(bytes.clone()).is_err(), "{what}");
            let h = BatchHeader::parse(&bytes).unwrap();
            let lazy = RecordBatch::from_verified(bytes, h, false).unwrap();
            let items: Vec<_> = lazy.iter().collect();
            assert!(items.iter().any(Result::is_err), "{what}: {items:?}");
            assert!(
                items.last().unwrap().is_err(),
                "{what}: the error ends the iteration"
            );
            assert!(
                matches!(items.last(), Some(Err(crate::Error::Corrupt { .. }))),
                "{what}"
            );
            // From every offset: an error, or exactly the good records from it (the records
            // stepped over are not decoded, so damage inside them alone goes unseen; what is
            // served is right).
            let good = RecordBatch::decode(encode(&records, 10)).unwrap();
            for from in 10..14 {
                let got: Vec<_> = lazy.iter_from(from).collect();
                if !got.iter().any(Result::is_err) {
                    let want: Vec<Plain> = good
                        .records()
                        .filter(|r| r.offset() >= from)
                        .map(|r| plain_owned(&r))
                        .collect();
                    let got: Vec<Plain> =
                        got.iter().map(|r| plain_ref(r.as_ref().unwrap())).collect();
                    assert_eq!(got, want, "{what} from {from}");
                }
            }
        }
    }
}
