//! [`BatchBuilder`]: records encoded straight into one batch's buffer as they are added, as
//! Kafka's `MemoryRecordsBuilder` does, so that an append copies each key and value once and
//! allocates nothing per record.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};

use super::record::{nullable_len, put_nullable, Record};
use super::varint::{put_varint, varint_len, varlong_len, zigzag};
use super::{
    compress, BatchHeader, CodecError, Compression, ATTR_LOG_APPEND_TIME, BATCH_HEADER_LEN, MAGIC,
};

/// A record batch being built: each record is encoded into the batch's buffer when it is added
/// (key, value and headers copied once, nothing allocated per record), and
/// [`Partition::append_builder`](crate::Partition::append_builder) writes the buffer as one batch,
/// then empties the builder for the next one, keeping its buffer. The fastest way to append many
/// small records; [`Partition::append_batch`](crate::Partition::append_batch) takes owned
/// [`Record`]s instead.
///
/// A record added without a timestamp gets the time the builder's batch was started (its first
/// record, read from the partition's clock for a builder from
/// [`Partition::batch_builder`](crate::Partition::batch_builder)), as a Kafka producer stamps a
/// record when it is sent; a topic with `LogAppendTime` replaces every timestamp with the append
/// time, as always.
///
/// # Examples
/// ```
/// use topiclog::Partition;
/// let dir = tempfile::tempdir()?;
/// let log = Partition::open(dir.path())?;
/// let mut batch = log.batch_builder();
/// for i in 0..100u32 {
///     batch.push(&i.to_be_bytes());
/// }
/// batch.push_keyed(Some(b"user-1"), Some(b"signed up"));
/// let info = log.append_builder(&mut batch)?;
/// assert_eq!((info.base_offset, info.last_offset), (0, 100));
/// assert!(batch.is_empty(), "ready for the next batch");
/// let read = log.read(100, 1)?;
/// let last = read.records().next().unwrap();
/// assert_eq!(last.key().map(|k| &k[..]), Some(&b"user-1"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct BatchBuilder {
    /// Room for the batch header, then the encoded records.
    buf: Vec<u8>,
    count: u32,
    /// Timestamp of the first record, to which every record's timestamp delta is relative.
    base_timestamp: i64,
    max_timestamp: i64,
    min_timestamp: i64,
    /// Time given to records added without one: the clock when the first such record of the
    /// batch was added.
    default_timestamp: Option<i64>,
    any_keyless: bool,
    /// Producer id, epoch and base sequence stamped on the header (an idempotent producer's
    /// batch); `None`: -1, -1, -1.
    producer: Option<(i64, i16, i32)>,
    clock: Arc<dyn Clock>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        BatchBuilder::new()
    }
}

impl BatchBuilder {
    /// An empty builder whose records without a timestamp get the system clock's time. A
    /// partition's [`batch_builder`](crate::Partition::batch_builder) uses the partition's clock.
    pub fn new() -> BatchBuilder {
        BatchBuilder::with_clock(Arc::new(SystemClock))
    }

    pub(crate) fn with_clock(clock: Arc<dyn Clock>) -> BatchBuilder {
        BatchBuilder {
            buf: Vec::new(),
            count: 0,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
            min_timestamp: i64::MAX,
            default_timestamp: None,
            any_keyless: false,
            producer: None,
            clock,
        }
    }

    /// Add a record with `value`, no key, no headers and no timestamp of its own.
    pub fn push(&mut self, value: &[u8]) -> &mut Self {
        // The common case of a batch of such records: every field before the value fits one
        // byte or two, known without a varint loop.
        let count = self.count;
        let stamp = self.default_timestamp;
        if count == 0 || count >= 8192 || value.len() >= 4096 || stamp != Some(self.base_timestamp)
        {
            return self.push_parts(None, Some(value), None, &[]);
        }
        // Timestamp delta 0, offset delta `count`, null key, the value's length, no headers.
        let (off, off_len) = two_byte_varint(count << 1);
        let (len, len_len) = two_byte_varint((value.len() as u32) << 1);
        let body = 1 + 1 + off_len + 1 + len_len + value.len() + 1;
        let (body_v, body_len) = two_byte_varint((body as u32) << 1);
        // Little-endian bytes: body length, attributes 0, timestamp delta 0, offset delta,
        // key length -1 (zig-zag 1), value length.
        let mut head = u128::from(body_v);
        let mut at = 8 * body_len as u32;
        at += 16; // attributes and timestamp delta, both 0
        head |= u128::from(off) << at;
        at += 8 * off_len as u32;
        head |= 1 << at;
        at += 8;
        head |= u128::from(len) << at;
        at += 8 * len_len as u32;
        let head_len = (at / 8) as usize;
        let buf = &mut self.buf;
        buf.reserve(head_len + value.len() + 1 + 16);
        let end = buf.len() + head_len;
        buf.extend_from_slice(&head.to_le_bytes());
        buf.truncate(end);
        buf.extend_from_slice(value);
        buf.push(0); // header count
        self.max_timestamp = self.max_timestamp.max(self.base_timestamp);
        self.min_timestamp = self.min_timestamp.min(self.base_timestamp);
        self.any_keyless = true;
        self.count += 1;
        self
    }

    /// Add a record with a key and a value (`None` value: a tombstone), no headers and no
    /// timestamp of its own.
    pub fn push_keyed(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) -> &mut Self {
        self.push_parts(key, value, None, &[])
    }

    /// Add a copy of `record` (key, value, timestamp and headers).
    pub fn push_record(&mut self, record: &Record) -> &mut Self {
        let ts = record.timestamp();
        let (key, value) = (record.key().map(|k| &k[..]), record.value().map(|v| &v[..]));
        if record.headers().is_empty() {
            return self.push_parts(key, value, ts, &[]);
        }
        let headers: Vec<(&str, Option<&[u8]>)> = record
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        self.push_parts(key, value, ts, &headers)
    }

    /// Add a record from its parts: key, value (`None`: a tombstone), timestamp (`None`: the
    /// batch's start time) and headers in order.
    pub fn push_parts(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: Option<i64>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> &mut Self {
        if self.count == 0 {
            if self.buf.len() < BATCH_HEADER_LEN {
                self.buf.resize(BATCH_HEADER_LEN, 0);
            }
            self.default_timestamp = None;
        }
        let ts = match timestamp {
            Some(t) => t,
            None => *self
                .default_timestamp
                .get_or_insert_with(|| self.clock.now_ms()),
        };
        if self.count == 0 {
            self.base_timestamp = ts;
        }
        self.max_timestamp = self.max_timestamp.max(ts);
        self.min_timestamp = self.min_timestamp.min(ts);
        self.any_keyless |= key.is_none();
        let ts_delta = ts.wrapping_sub(self.base_timestamp);
        let offset_delta = self.count as i32;
        let mut body = 1 + varlong_len(ts_delta) + varint_len(offset_delta);
        body += nullable_len(key) + nullable_len(value) + varint_len(headers.len() as i32);
        for (k, v) in headers {
            body += varint_len(k.len() as i32) + k.len() + nullable_len(*v);
        }
        // The small fields go through a stack buffer copied whole (a fixed-size copy the
        // compiler inlines, then a truncate to what was written): per record one copy of the
        // value and one of the key, and no call per field.
        let buf = &mut self.buf;
        buf.reserve(varint_len(body as i32) + body + SMALL);
        let mut head = Small::default();
        head.varint(body as i32);
        head.byte(0); // attributes
        head.uvarint(zigzag(ts_delta));
        head.varint(offset_delta);
        head.nullable_len(key);
        if key.is_none() {
            head.nullable_len(value);
        }
        head.put(buf);
        if let Some(k) = key {
            buf.extend_from_slice(k);
            let mut mid = Small::default();
            mid.nullable_len(value);
            mid.put(buf);
        }
        if let Some(v) = value {
            buf.extend_from_slice(v);
        }
        if headers.is_empty() {
            buf.push(0);
        } else {
            put_varint(buf, headers.len() as i32);
            for (k, v) in headers {
                put_varint(buf, k.len() as i32);
                buf.extend_from_slice(k.as_bytes());
                put_nullable(buf, *v);
            }
        }
        self.count += 1;
        self
    }

    /// Number of records added.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record was added since the builder was made or last emptied.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the batch takes as stored (uncompressed), header included.
    pub fn encoded_len(&self) -> usize {
        if self.count == 0 {
            0
        } else {
            self.buf.len()
        }
    }

    /// Drop every record added, keeping the buffer for the next batch.
    pub fn clear(&mut self) {
        self.buf.truncate(BATCH_HEADER_LEN.min(self.buf.len()));
        self.count = 0;
        self.max_timestamp = i64::MIN;
        self.min_timestamp = i64::MAX;
        self.any_keyless = false;
        self.producer = None;
        if self.buf.capacity() > 16 << 20 {
            // Keep the buffer of ordinary batches, not of a rare huge one.
            self.buf = Vec::new();
        }
    }

    /// Whether some record has no key (a compacted topic refuses the batch).
    pub(crate) fn any_keyless(&self) -> bool {
        self.any_keyless
    }

    /// The time given to the records added without a timestamp of their own since the builder
    /// was last emptied, `None` if there was none.
    pub(crate) fn default_timestamp(&self) -> Option<i64> {
        self.default_timestamp.filter(|_| self.count > 0)
    }

    /// Stamp the batch with an idempotent producer's id, epoch and base sequence (until
    /// [`clear`](Self::clear)).
    pub(crate) fn set_producer(&mut self, producer_id: i64, epoch: i16, base_sequence: i32) {
        self.producer = Some((producer_id, epoch, base_sequence));
    }

    /// The smallest timestamp of a record, `None` when empty.
    pub(crate) fn min_timestamp(&self) -> Option<i64> {
        (self.count > 0).then_some(self.min_timestamp)
    }

    /// The encoded records (after the header's room).
    pub(crate) fn records(&self) -> &[u8] {
        self.buf.get(BATCH_HEADER_LEN..).unwrap_or_default()
    }

    /// Fill in the header (base offset 0, CRC computed) and return the whole batch, its records
    /// uncompressed. `log_append_time`: stamp the batch with `now` (Kafka's `LogAppendTime`).
    /// Only for a non-empty builder.
    pub(crate) fn finish(&mut self, log_append_time: Option<i64>) -> &mut [u8] {
        let fields = self.header_fields(log_append_time, 0);
        super::batch::write_header(&mut self.buf, &fields);
        &mut self.buf
    }

    /// The batch with its records compressed with `codec` as one stream (header filled in, base
    /// offset 0), in a new buffer. Only for a non-empty builder.
    ///
    /// # Errors
    /// [`CodecError::Unavailable`] for a codec this build leaves out.
    pub(crate) fn finish_compressed(
        &self,
        codec: Compression,
        log_append_time: Option<i64>,
    ) -> Result<Vec<u8>, CodecError> {
        let mut out = vec![0u8; BATCH_HEADER_LEN];
        compress(codec, self.records(), &mut out)?;
        let fields = self.header_fields(log_append_time, codec.attribute_bits());
        super::batch::write_header(&mut out, &fields);
        Ok(out)
    }

    /// The header of the batch, with `codec_bits` in its attributes.
    fn header_fields(&self, log_append_time: Option<i64>, codec_bits: u16) -> BatchHeader {
        let mut attributes = codec_bits;
        if log_append_time.is_some() {
            attributes |= ATTR_LOG_APPEND_TIME;
        }
        BatchHeader {
            base_offset: 0,
            length: 0,
            partition_leader_epoch: 0,
            magic: MAGIC,
            crc: 0,
            attributes,
            last_offset_delta: self.count.saturating_sub(1),
            base_timestamp: log_append_time.unwrap_or(self.base_timestamp),
            max_timestamp: log_append_time.unwrap_or(self.max_timestamp),
            producer_id: self.producer.map_or(-1, |p| p.0),
            producer_epoch: self.producer.map_or(-1, |p| p.1),
            base_sequence: self.producer.map_or(-1, |p| p.2),
            record_count: self.count,
        }
    }
}

/// Room of a [`Small`]: the fields of a record before its key take at most 31 bytes (lengths and
/// offset delta 5 each, timestamp delta 10, attributes 1).
const SMALL: usize = 32;

/// A few varints built in two registers (written whole into the batch, then cut back to what
/// was written: fixed-size copies, and no store-to-load stall of bytes stored one by one and
/// copied as a vector).
#[derive(Default)]
struct Small {
    lo: u128,
    hi: u128,
    len: usize,
}

impl Small {
    #[inline]
    fn byte(&mut self, b: u8) {
        let shift = 8 * (self.len % 16) as u32;
        if self.len < 16 {
            self.lo |= u128::from(b) << shift;
        } else if self.len < SMALL {
            self.hi |= u128::from(b) << shift;
        }
        self.len += 1;
    }

    #[inline]
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    #[inline]
    fn varint(&mut self, v: i32) {
        self.uvarint(u64::from(((v << 1) ^ (v >> 31)) as u32));
    }

    /// A nullable byte string's length: -1 for null.
    #[inline]
    fn nullable_len(&mut self, b: Option<&[u8]>) {
        self.varint(b.map_or(-1, |b| b.len() as i32));
    }

    /// Append what was written to `buf`.
    #[inline]
    fn put(&self, buf: &mut Vec<u8>) {
        let end = buf.len() + self.len.min(SMALL);
        buf.extend_from_slice(&self.lo.to_le_bytes());
        if self.len > 16 {
            buf.extend_from_slice(&self.hi.to_le_bytes());
        }
        buf.truncate(end);
    }
}

/// The unsigned varint of `v` (below 2^14), as its bytes in a little-endian `u16` and their
/// count.
#[inline]
fn two_byte_varint(v: u32) -> (u16, usize) {
    if v < 0x80 {
        (v as u16, 1)
    } else {
        (((v & 0x7f) | 0x80 | ((v >> 7) << 8)) as u16, 2)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::indexing_slicing,
        reason = "tests index fixtures they built themselves"
    )]

    use super::*;
    use crate::clock::ManualClock;
    use crate::format::{encode_batch, BatchMeta, RecordBatch};
    use bytes::Bytes;

    /// The builder's bytes are exactly those of `encode_batch` for the same records, which
    /// tests/kafka_format checks against an independent implementation of Kafka's format.
    #[test]
    fn builds_exactly_the_bytes_the_record_encoder_does() {
        let clock = Arc::new(ManualClock::new(1_000));
        let records = vec![
            Record::new("a").with_timestamp(1_500),
            Record::tombstone("k"),
            Record::new("v")
                .with_key("key")
                .with_header("h1", Some(Bytes::from_static(b"x")))
                .with_header("h2", None),
            Record::new(vec![7u8; 300]).with_timestamp(900),
        ];
        let mut b = BatchBuilder::with_clock(clock.clone());
        for r in &records {
            b.push_record(r);
        }
        assert_eq!(b.len(), 4);
        let built = b.finish(None).to_vec();
        // The encoder gives timestamp-less records `default_timestamp`: the clock at the first
        // push is what the builder gave them too.
        let mut expected = Vec::new();
        encode_batch(&mut expected, &records, &BatchMeta::new(1_000)).unwrap();
        assert_eq!(built, expected);
        let batch = RecordBatch::decode(Bytes::from(built)).unwrap();
        let got: Vec<Record> = batch.records().map(|r| r.to_record()).collect();
        assert_eq!(got[0], records[0]);
        assert_eq!(got[1].timestamp(), Some(1_000));
        assert_eq!(got[3].timestamp(), Some(900));
        assert_eq!(b.min_timestamp(), Some(900));
        assert!(b.any_keyless());
    }

    proptest::proptest! {
        /// Any records, pushed one way or another, make exactly `encode_batch`'s bytes.
        #[test]
        fn any_records_build_the_encoders_bytes(
            recs in proptest::collection::vec(
                (
                    proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..40)),
                    proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..300)),
                    proptest::option::of(-1_000i64..1_000_000),
                    proptest::collection::vec(("[a-z]{0,5}", proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..8))), 0..3),
                ),
                1..40,
            ),
            reuse in proptest::bool::ANY,
        ) {
            let records: Vec<Record> = recs
                .iter()
                .map(|(k, v, t, h)| {
                    let mut r = Record::default().with_value(v.clone().map(Bytes::from));
                    if let Some(k) = k {
                        r = r.with_key(k.clone());
                    }
                    if let Some(t) = t {
                        r = r.with_timestamp(*t);
                    }
                    for (hk, hv) in h {
                        r = r.with_header(hk.clone(), hv.clone().map(Bytes::from));
                    }
                    r
                })
                .collect();
            let mut b = BatchBuilder::with_clock(Arc::new(ManualClock::new(77)));
            if reuse {
                b.push(b"left over from an earlier batch");
                b.clear();
            }
            for (r, (k, v, t, h)) in records.iter().zip(&recs) {
                if h.is_empty() && t.is_none() {
                    b.push_keyed(k.as_deref(), v.as_deref());
                } else {
                    b.push_record(r);
                }
            }
            let mut expected = Vec::new();
            encode_batch(&mut expected, &records, &BatchMeta::new(77)).unwrap();
            proptest::prop_assert_eq!(b.finish(None).to_vec(), expected);
        }
    }

    /// `push`'s fast path makes exactly the encoder's bytes, across every one- and two-byte
    /// boundary of its varints (offset delta 63/64, value length 63/64, body length), and past
    /// them (the general path).
    #[test]
    fn push_makes_the_encoders_bytes_across_varint_boundaries() {
        let clock = Arc::new(ManualClock::new(1_000));
        for sizes in [
            vec![
                0usize, 1, 58, 59, 60, 61, 62, 63, 64, 65, 100, 127, 128, 4095, 4096, 9000,
            ],
            (0..300).map(|i| i % 70).collect(),
        ] {
            let mut b = BatchBuilder::with_clock(clock.clone());
            let records: Vec<Record> = sizes
                .iter()
                .map(|&n| Record::new(vec![(n % 251) as u8; n]))
                .collect();
            for r in &records {
                b.push(r.value().unwrap());
            }
            let mut expected = Vec::new();
            encode_batch(&mut expected, &records, &BatchMeta::new(1_000)).unwrap();
            assert_eq!(b.finish(None).to_vec(), expected);
        }
        // A batch started with an explicit timestamp: `push` takes the general path.
        let mut b = BatchBuilder::with_clock(clock.clone());
        b.push_parts(None, Some(b"a"), Some(5), &[]);
        b.push(b"b");
        let records = vec![Record::new("a").with_timestamp(5), Record::new("b")];
        let mut expected = Vec::new();
        encode_batch(&mut expected, &records, &BatchMeta::new(1_000)).unwrap();
        assert_eq!(b.finish(None).to_vec(), expected);
    }

    #[test]
    fn a_cleared_builder_starts_a_new_batch_with_a_new_time() {
        let clock = Arc::new(ManualClock::new(5_000));
        let mut b = BatchBuilder::with_clock(clock.clone());
        b.push(b"one");
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.encoded_len(), 0);
        clock.advance(std::time::Duration::from_millis(10));
        b.push(b"two").push_keyed(Some(b"k"), None);
        assert!(!b.any_keyless() || b.len() == 2);
        let batch = RecordBatch::decode(Bytes::from(b.finish(None).to_vec())).unwrap();
        let got: Vec<_> = batch.records().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].value().map(|v| &v[..]), Some(&b"two"[..]));
        assert_eq!(got[0].timestamp(), 5_010);
        assert_eq!(got[1].value(), None);
        assert_eq!(batch.max_timestamp(), 5_010);
    }

    #[test]
    fn log_append_time_stamps_the_batch() {
        let mut b = BatchBuilder::with_clock(Arc::new(ManualClock::new(5_000)));
        b.push_parts(None, Some(b"x"), Some(10), &[]);
        let batch = RecordBatch::decode(Bytes::from(b.finish(Some(9_999)).to_vec())).unwrap();
        assert_eq!(batch.records().next().unwrap().timestamp(), 9_999);
    }
}
