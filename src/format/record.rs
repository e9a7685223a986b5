//! Records: what users append ([`Record`]) and what they read back ([`StoredRecord`]).
//!
//! Layout of one record inside a batch's records section:
//!
//! ```text
//! length            uvarint   bytes of this record after this field
//! timestamp delta   zigzag    timestamp - batch first timestamp
//! offset delta      uvarint   offset - batch base offset
//! key               uvarint   0 = null, n + 1 = n bytes follow
//! value             uvarint   0 = null (a tombstone), n + 1 = n bytes follow
//! header count      uvarint
//! per header:       key: uvarint n + n bytes of UTF-8; value: uvarint (0 = null, n + 1) + bytes
//! ```

use std::ops::Range;

use bytes::Bytes;

use super::varint::{get_uvarint, put_uvarint, unzigzag, uvarint_len, zigzag};

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
    /// at append time.
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
    pub(crate) fn body_len(&self, timestamp_delta: i64, offset_delta: u32) -> usize {
        let mut n = uvarint_len(zigzag(timestamp_delta)) + uvarint_len(u64::from(offset_delta));
        n += nullable_len(self.key.as_deref());
        n += nullable_len(self.value.as_deref());
        n += uvarint_len(self.headers.len() as u64);
        for (k, v) in &self.headers {
            n += uvarint_len(k.len() as u64) + k.len();
            n += nullable_len(v.as_deref());
        }
        n
    }

    /// Append the record (length prefix included) to `buf`.
    pub(crate) fn encode(&self, buf: &mut Vec<u8>, timestamp_delta: i64, offset_delta: u32) {
        let body = self.body_len(timestamp_delta, offset_delta);
        put_uvarint(buf, body as u64);
        put_uvarint(buf, zigzag(timestamp_delta));
        put_uvarint(buf, u64::from(offset_delta));
        put_nullable(buf, self.key.as_deref());
        put_nullable(buf, self.value.as_deref());
        put_uvarint(buf, self.headers.len() as u64);
        for (k, v) in &self.headers {
            put_uvarint(buf, k.len() as u64);
            buf.extend_from_slice(k.as_bytes());
            put_nullable(buf, v.as_deref());
        }
    }
}

#[inline]
fn nullable_len(b: Option<&[u8]>) -> usize {
    match b {
        None => 1,
        Some(b) => uvarint_len(b.len() as u64 + 1) + b.len(),
    }
}

#[inline]
fn put_nullable(buf: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => buf.push(0),
        Some(b) => {
            put_uvarint(buf, b.len() as u64 + 1);
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
    pub(crate) fn encode(&self, buf: &mut Vec<u8>, timestamp_delta: i64, offset_delta: u64) {
        let body = uvarint_len(zigzag(timestamp_delta))
            + uvarint_len(offset_delta)
            + nullable_len(self.key.as_deref())
            + nullable_len(self.value.as_deref())
            + uvarint_len(u64::from(self.header_count))
            + self.headers.len();
        put_uvarint(buf, body as u64);
        put_uvarint(buf, zigzag(timestamp_delta));
        put_uvarint(buf, offset_delta);
        put_nullable(buf, self.key.as_deref());
        put_nullable(buf, self.value.as_deref());
        put_uvarint(buf, u64::from(self.header_count));
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
        let (k, v) = parse_header(self.buf, &mut self.pos, self.buf.len())?;
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
/// Validates everything, including header keys being UTF-8. `None` on any inconsistency.
pub(crate) fn parse_record(buf: &[u8], pos: &mut usize, end: usize) -> Option<RecordParts> {
    let end = end.min(buf.len());
    let body_len = get_uvarint(buf, pos)?;
    if body_len > (end - (*pos).min(end)) as u64 {
        return None;
    }
    let rec_end = *pos + body_len as usize;
    let timestamp_delta = unzigzag(get_uvarint(buf.get(..rec_end)?, pos)?);
    let offset_delta = get_uvarint(buf.get(..rec_end)?, pos)?;
    let key = parse_nullable(buf, pos, rec_end)?;
    let value = parse_nullable(buf, pos, rec_end)?;
    let header_count = get_uvarint(buf.get(..rec_end)?, pos)?;
    // Every header takes at least two bytes, so a count above that is damage.
    if header_count > ((rec_end - (*pos).min(rec_end)) / 2) as u64 {
        return None;
    }
    let headers_start = *pos;
    for _ in 0..header_count {
        let (k, _) = parse_header(buf, pos, rec_end)?;
        std::str::from_utf8(buf.get(k)?).ok()?;
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

fn parse_header(buf: &[u8], pos: &mut usize, end: usize) -> Option<HeaderParts> {
    let end = end.min(buf.len());
    let klen = get_uvarint(buf.get(..end)?, pos)?;
    if klen > (end - (*pos).min(end)) as u64 {
        return None;
    }
    let k = *pos..*pos + klen as usize;
    *pos = k.end;
    let v = parse_nullable(buf, pos, end)?;
    Some((k, v))
}

/// Parse a nullable byte string; `Some(None)` is null, `None` is damage.
fn parse_nullable(buf: &[u8], pos: &mut usize, end: usize) -> Option<Option<Range<usize>>> {
    let end = end.min(buf.len());
    let tag = get_uvarint(buf.get(..end)?, pos)?;
    if tag == 0 {
        return Some(None);
    }
    let len = tag - 1;
    if len > (end - (*pos).min(end)) as u64 {
        return None;
    }
    let r = *pos..*pos + len as usize;
    *pos = r.end;
    Some(Some(r))
}
