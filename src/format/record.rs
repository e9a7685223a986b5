//! Records: what users append ([`Record`]) and what they read back ([`StoredRecord`]).
//!
//! Layout of one record inside a batch's records section, Kafka's `DefaultRecord` (every number a
//! zig-zag varint; `varlong` for the timestamp delta):
//!
//! ```text
//! length            varint    bytes of this record after this field
//! attributes        int8      unused, 0
//! timestamp delta   varlong   timestamp - batch base timestamp
//! offset delta      varint    offset - batch base offset
//! key length        varint    -1 = null, else n bytes follow
//! value length      varint    -1 = null (a tombstone), else n bytes follow
//! header count      varint
//! per header:       key: varint n >= 0 + n bytes of UTF-8; value: varint (-1 = null) + bytes
//! ```

use std::ops::Range;

use bytes::Bytes;

use super::varint::{get_varint, get_varlong, put_varint, put_varlong, varint_len, varlong_len};

/// A record to append: an optional key, an optional value (a missing value is a tombstone for
/// compaction), an optional timestamp and headers.
///
/// Built in builder style; cloning is cheap (`Bytes` are reference-counted).
///
/// # Examples
/// ```
/// use topiclog::{Bytes, Record};
/// let r = Record::new("hello")
///     .with_key("user-42")
///     .with_timestamp(1_700_000_000_000)
///     .with_header("trace-id", Bytes::from("abc"))
///     .with_header("sampled", None); // a null header
/// assert_eq!(r.value().map(|v| &v[..]), Some(&b"hello"[..]));
/// assert_eq!(r.key().map(|k| &k[..]), Some(&b"user-42"[..]));
/// assert_eq!(r.headers()[1], ("sampled".to_owned(), None));
///
/// let tombstone = Record::new("v1").with_key("user-42").with_value(None);
/// assert_eq!(tombstone.value(), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) timestamp: Option<i64>,
    pub(crate) headers: Vec<(String, Option<Bytes>)>,
}

impl Record {
    /// A record with `value`, no key, no headers; the log assigns the timestamp.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Record {
            value: Some(value.into()),
            ..Record::default()
        }
    }

    /// A tombstone: `key` with a null value. On a compacted topic it deletes the key.
    pub fn tombstone(key: impl Into<Bytes>) -> Self {
        Record {
            key: Some(key.into()),
            ..Record::default()
        }
    }

    /// Set the key.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Set the value: `Bytes`, `Some(Bytes)`, or `None`, which makes a tombstone.
    #[must_use]
    pub fn with_value(mut self, value: impl Into<Option<Bytes>>) -> Self {
        self.value = value.into();
        self
    }

    /// Set the timestamp in milliseconds since the Unix epoch. Without one, the log uses its clock
    /// at append time; a [`Producer`](crate::Producer) or a [`BatchBuilder`](crate::BatchBuilder)
    /// uses its clock's time when the record's batch got its first record without one (a Kafka
    /// producer stamps each record at its own `send`; a producer batch waits at most `linger`).
    #[must_use]
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// Add a header with a value (`Bytes` or `Some(Bytes)`), or a null header (`None`). Keys need
    /// not be unique; order is preserved.
    #[must_use]
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Option<Bytes>>) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }

    /// The key, if any.
    pub fn key(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }

    /// The value; `None` for a tombstone.
    pub fn value(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }

    /// The timestamp set by the caller, if any.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The headers, in order.
    pub fn headers(&self) -> &[(String, Option<Bytes>)] {
        &self.headers
    }

    /// Encoded size of the record's body (everything after its length prefix).
    /// (Sizes are below the batch limit, which the caller checks, so they fit Kafka's `int32`.)
    pub(crate) fn body_len(&self, timestamp_delta: i64, offset_delta: u32) -> usize {
        let mut n = 1 + varlong_len(timestamp_delta) + varint_len(offset_delta as i32);
        n += nullable_len(self.key.as_deref());
        n += nullable_len(self.value.as_deref());
        n += varint_len(self.headers.len() as i32);
        for (k, v) in &self.headers {
            n += varint_len(k.len() as i32) + k.len();
            n += nullable_len(v.as_deref());
        }
        n
    }

    /// Append the record (length prefix included) to `buf`.
    pub(crate) fn encode(&self, buf: &mut Vec<u8>, timestamp_delta: i64, offset_delta: u32) {
        let body = self.body_len(timestamp_delta, offset_delta);
        put_varint(buf, body as i32);
        buf.push(0); // attributes
        put_varlong(buf, timestamp_delta);
        put_varint(buf, offset_delta as i32);
        put_nullable(buf, self.key.as_deref());
        put_nullable(buf, self.value.as_deref());
        put_varint(buf, self.headers.len() as i32);
        for (k, v) in &self.headers {
            put_varint(buf, k.len() as i32);
            buf.extend_from_slice(k.as_bytes());
            put_nullable(buf, v.as_deref());
        }
    }
}

#[inline]
pub(super) fn nullable_len(b: Option<&[u8]>) -> usize {
    match b {
        None => 1,
        Some(b) => varint_len(b.len() as i32) + b.len(),
    }
}

#[inline]
pub(super) fn put_nullable(buf: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i32);
            buf.extend_from_slice(b);
        }
    }
}

/// A record read back from the log. Key, value and headers are zero-copy slices of the buffer the
/// batch was read into (or of the mapped segment file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub(crate) offset: u64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: Bytes,
    pub(crate) header_count: u32,
}

impl StoredRecord {
    /// The record's offset in its partition.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The record's timestamp (ms since the Unix epoch).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The key, if any.
    pub fn key(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }

    /// The value; `None` for a tombstone.
    pub fn value(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }

    /// Number of headers.
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }

    /// The headers, in the order they were added.
    pub fn headers(&self) -> HeaderIter<'_> {
        HeaderIter {
            buf: &self.headers,
            pos: 0,
            remaining: self.header_count,
        }
    }

    /// Append the record (length prefix included) to `buf` with the given deltas, copying its
    /// key, value and headers as stored.
    /// (`offset_delta` is within its batch's `int32` range, the caller's batch.)
    pub(crate) fn encode(&self, buf: &mut Vec<u8>, timestamp_delta: i64, offset_delta: u64) {
        let offset_delta = offset_delta as i32;
        let body = 1
            + varlong_len(timestamp_delta)
            + varint_len(offset_delta)
            + nullable_len(self.key.as_deref())
            + nullable_len(self.value.as_deref())
            + varint_len(self.header_count as i32)
            + self.headers.len();
        put_varint(buf, body as i32);
        buf.push(0); // attributes
        put_varlong(buf, timestamp_delta);
        put_varint(buf, offset_delta);
        put_nullable(buf, self.key.as_deref());
        put_nullable(buf, self.value.as_deref());
        put_varint(buf, self.header_count as i32);
        buf.extend_from_slice(&self.headers);
    }

    /// Convert back into a [`Record`] with the same key, value, timestamp and headers (for example
    /// to copy it to another log).
    pub fn to_record(&self) -> Record {
        Record {
            key: self.key.clone(),
            value: self.value.clone(),
            timestamp: Some(self.timestamp),
            headers: self
                .headers()
                .map(|h| {
                    let value = h.value.map(|v| self.headers.slice_ref(v));
                    (h.key.to_owned(), value)
                })
                .collect(),
        }
    }
}

/// One header of a [`StoredRecord`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The header key.
    pub key: &'a str,
    /// The header value, if not null.
    pub value: Option<&'a [u8]>,
}

/// Iterator over a stored record's headers.
#[derive(Clone, Debug)]
pub struct HeaderIter<'a> {
    buf: &'a [u8],
    pos: usize,
    remaining: u32,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // The batch was validated when it was decoded, so these cannot fail; if they somehow did,
        // iteration just ends.
        let (k, v) = parse_header(self.buf, &mut self.pos)?;
        let key = std::str::from_utf8(self.buf.get(k)?).ok()?;
        let value = match v {
            None => None,
            Some(r) => Some(self.buf.get(r)?),
        };
        Some(Header { key, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

/// Positions of one record's parts inside the records buffer.
pub(crate) struct RecordParts {
    pub timestamp_delta: i64,
    pub offset_delta: u64,
    pub key: Option<Range<usize>>,
    pub value: Option<Range<usize>>,
    pub headers: Range<usize>,
    pub header_count: u32,
}

/// Parse one record starting at `*pos`, not reading past `end`; advances `pos` past it.
/// Validates everything, including header keys being UTF-8. `None` on any inconsistency. The
/// record attributes byte is unused in Kafka's format and ignored, as Kafka's reader does.
#[inline]
pub(crate) fn parse_record(buf: &[u8], pos: &mut usize, end: usize) -> Option<RecordParts> {
    let end = end.min(buf.len());
    let buf = buf.get(..end)?;
    let body_len = usize::try_from(get_varint(buf, pos)?).ok()?;
    if body_len > end - (*pos).min(end) {
        return None;
    }
    let rec_end = *pos + body_len;
    let rec = buf.get(..rec_end)?;
    *pos += 1; // attributes
    let timestamp_delta = get_varlong(rec, pos)?;
    let offset_delta = u64::try_from(get_varint(rec, pos)?).ok()?;
    let key = parse_nullable(rec, pos)?;
    let value = parse_nullable(rec, pos)?;
    let header_count = u64::try_from(get_varint(rec, pos)?).ok()?;
    // Every header takes at least two bytes, so a count above that is damage.
    if header_count > ((rec_end - (*pos).min(rec_end)) / 2) as u64 {
        return None;
    }
    let headers_start = *pos;
    for _ in 0..header_count {
        let (k, _) = parse_header(rec, pos)?;
        std::str::from_utf8(rec.get(k)?).ok()?;
    }
    if *pos != rec_end {
        return None;
    }
    Some(RecordParts {
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers: headers_start..rec_end,
        header_count: header_count as u32,
    })
}

type HeaderParts = (Range<usize>, Option<Range<usize>>);

/// Parse one header within `buf` (which ends where the record does).
fn parse_header(buf: &[u8], pos: &mut usize) -> Option<HeaderParts> {
    let klen = usize::try_from(get_varint(buf, pos)?).ok()?;
    if klen > buf.len() - (*pos).min(buf.len()) {
        return None;
    }
    let k = *pos..*pos + klen;
    *pos = k.end;
    let v = parse_nullable(buf, pos)?;
    Some((k, v))
}

/// Parse a nullable byte string within `buf`: length -1 is null (`Some(None)`); `None` is damage
/// (any other negative length, or bytes past the end).
#[inline]
fn parse_nullable(buf: &[u8], pos: &mut usize) -> Option<Option<Range<usize>>> {
    let len = get_varint(buf, pos)?;
    if len == -1 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    if len > buf.len() - (*pos).min(buf.len()) {
        return None;
    }
    let r = *pos..*pos + len;
    *pos = r.end;
    Some(Some(r))
}

/// A record borrowed from a batch: key, value and headers are `&'a [u8]` slices of the batch's
/// records section, so handing one out costs no allocation and no reference-count traffic.
/// Yielded by [`RecordBatch::iter`](crate::segment::RecordBatch::iter) and by the batch
/// collections' `iter` methods ([`Batches::iter`](crate::Batches::iter),
/// [`LazyBatches::iter`](crate::LazyBatches::iter)).
///
/// # Examples
/// ```
/// use topiclog::{segment::RecordBatch, Record};
/// let batch = RecordBatch::build(&[Record::new("a").with_key("k"), Record::tombstone("t")], 7, 1_000)?;
/// let mut it = batch.iter();
/// let first = it.next().unwrap()?;
/// assert_eq!((first.offset(), first.key(), first.value()), (7, Some(&b"k"[..]), Some(&b"a"[..])));
/// let second = it.next().unwrap()?;
/// assert_eq!((second.offset(), second.value()), (8, None));
/// assert!(it.next().is_none());
/// # Ok::<(), topiclog::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub(crate) offset: u64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: &'a [u8],
    pub(crate) header_count: u32,
}

impl<'a> RecordRef<'a> {
    /// The record's offset in its partition.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The record's timestamp (ms since the Unix epoch).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The key, if any.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The value; `None` for a tombstone.
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// Number of headers.
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }

    /// The headers, in the order they were added. (Their framing and UTF-8 keys were checked
    /// when the record was parsed.)
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter {
            buf: self.headers,
            pos: 0,
            remaining: self.header_count,
        }
    }

    /// Copy into a [`Record`] with the same key, value, timestamp and headers.
    pub fn to_record(&self) -> Record {
        Record {
            key: self.key.map(Bytes::copy_from_slice),
            value: self.value.map(Bytes::copy_from_slice),
            timestamp: Some(self.timestamp),
            headers: self
                .headers()
                .map(|h| (h.key.to_owned(), h.value.map(Bytes::copy_from_slice)))
                .collect(),
        }
    }
}

/// Step over the record at `*pos` by its length field alone, without decoding it: `None` if the
/// length is not a valid varint or the record would end past `buf`.
#[inline]
pub(crate) fn skip_record(buf: &[u8], pos: &mut usize) -> Option<()> {
    let body_len = usize::try_from(get_varint(buf, pos)?).ok()?;
    if body_len > buf.len() - (*pos).min(buf.len()) {
        return None;
    }
    *pos += body_len;
    Some(())
}

/// The offset delta of the record at `pos` and where the record ends, reading only its length,
/// attributes, timestamp delta and offset delta: `None` on damage in those fields or a length past
/// `buf`.
#[inline]
pub(crate) fn peek_offset_delta(buf: &[u8], pos: usize) -> Option<(u64, usize)> {
    let mut p = pos;
    let body_len = usize::try_from(get_varint(buf, &mut p)?).ok()?;
    if body_len > buf.len() - p.min(buf.len()) {
        return None;
    }
    let end = p + body_len;
    let rec = buf.get(..end)?;
    p += 1; // attributes
    get_varlong(rec, &mut p)?;
    let delta = u64::try_from(get_varint(rec, &mut p)?).ok()?;
    Some((delta, end))
}
