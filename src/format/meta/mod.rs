//! topiclog's own metadata: one envelope, one bounds-checked [`Reader`], one [`Writer`], and the
//! [`Encode`]/[`Decode`] codec every metadata record implements.
//!
//! Segments hold record batches (`batch.rs`). Every other file topiclog writes is one record in
//! one checksummed envelope (layout in `docs/FORMAT.md`, "Metadata envelope"):
//!
//! ```text
//! pos  size
//!   0     4  magic          which file this is (`TLCP`, `TLCS`, `TLCC`, `TLPS`, `TLPI`, `TLKA`, `TLTE`)
//!   4     1  version u8     how to read the body
//!   5     4  length u32     bytes of body
//!   9     n  body           the record's fields, little-endian
//! 9+n     4  CRC-32 u32     of every byte before it
//! ```
//!
//! Versions written before the length field existed (each record's [`Envelope::legacy`]
//! versions) go straight from the version byte to the body, which then runs to the CRC; they are
//! still read. A file is valid only if it is exactly one envelope: magic, a version this release
//! reads, a length that matches the file, a matching CRC, and a body its record decodes to the
//! last byte.
//!
//! The checksum is CRC-32 (IEEE) as `crc32fast` computes it, the one these files always had:
//! they are small, replaced atomically and read only by topiclog, so the checksum has to catch
//! torn writes and bit rot, not match Kafka's CRC-32C. (Batches have their own CRC rule,
//! `docs/FORMAT.md`.)
//!
//! The records of the `__consumer_offsets` topic ([`OffsetCommitKey`], [`OffsetCommitValue`])
//! use the same reader, writer and traits without the envelope: they live inside record batches,
//! whose CRC covers them.
//!
//! Decoding never panics, never loops on its input and never allocates more than the input could
//! hold: every read is checked against what remains, and every count read from disk is checked
//! against a maximum and against what remains ([`Reader::count`]) before anything is allocated
//! for it. This module is `#[doc(hidden)]`: public for the fuzz crate, not a stable API.

mod checkpoint;
mod cleaner;
mod offsets;
mod producer;

pub use checkpoint::{AdoptedLog, Checkpoint, CleanShutdown, TrustedEnd};
pub use cleaner::{CleanerCheckpoint, Horizon, MAX_HORIZONS};
pub use offsets::{OffsetCommitKey, OffsetCommitValue, MAX_OFFSETS_KEY_STRING_LEN};
pub use producer::{
    CachedBatch, ProducerIdCounter, ProducerSnapshot, SnapshotProducer, MAX_PRODUCER_BATCHES,
};

use std::fmt;
use std::path::Path;

/// CRC-32 (IEEE, as `crc32fast` computes it): the checksum of topiclog's own metadata files and
/// of `topic.conf`'s checksum line. Record batches are Kafka's and use Kafka's CRC-32C instead
/// (`format::crc32c`, over a batch's attributes to its end).
#[inline]
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

// ---- Errors ---------------------------------------------------------------------------------------

/// Why bytes did not decode, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte position (from the start of what was decoded) of the field that failed.
    pub position: usize,
    /// What was wrong.
    pub reason: &'static str,
}

impl DecodeError {
    /// An error at `position`.
    pub fn new(position: usize, reason: &'static str) -> DecodeError {
        DecodeError { position, reason }
    }

    /// As [`crate::Error::Corrupt`] for the file at `path` holding a `what` (e.g. "checkpoint").
    pub(crate) fn corrupt(self, path: &Path, what: &str) -> crate::Error {
        crate::Error::corrupt(
            path,
            self.position as u64,
            format!("{what}: {}", self.reason),
        )
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.position)
    }
}

impl std::error::Error for DecodeError {}

// ---- The codec traits -----------------------------------------------------------------------------

/// A record that writes itself as bytes. Encoding cannot fail: a record holds only what its
/// layout can express (each type documents its limits).
pub trait Encode {
    /// Append the record's bytes to `w`.
    fn encode_into(&self, w: &mut Writer);

    /// The record's bytes.
    fn encode_to_vec(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        w.into_vec()
    }
}

/// A record read back from bytes that may be damaged.
pub trait Decode: Sized {
    /// Decode one record from `r`, consuming the bytes it spans. An enveloped record spans all
    /// that remains.
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decode `bytes` as exactly one record: bytes left over are an error.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let record = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(record)
    }
}

// ---- Reader ---------------------------------------------------------------------------------------

/// A cursor over untrusted bytes. Every read checks what remains and returns an error, never
/// panics; nothing it returns is allocated (slices borrow the input).
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
    /// Position of `rest`'s first byte from the start of the outermost input (for errors).
    position: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`, positions counted from their first byte.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader::starting_at(bytes, 0)
    }

    fn starting_at(bytes: &'a [u8], position: usize) -> Reader<'a> {
        Reader {
            rest: bytes,
            position,
        }
    }

    /// Position of the next byte.
    pub fn position(&self) -> usize {
        self.position
    }

    /// The byte `i` places ahead of the next one, without reading it.
    pub fn peek_at(&self, i: usize) -> Option<u8> {
        self.rest.get(i).copied()
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// An error at the next byte.
    pub fn error(&self, reason: &'static str) -> DecodeError {
        DecodeError::new(self.position, reason)
    }

    /// `Ok` if every byte was read; otherwise "bytes left over".
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.error("bytes left over after the last field"))
        }
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or_else(|| self.error("truncated"))?;
        self.rest = tail;
        self.position += n;
        Ok(head)
    }

    /// The next `N` bytes, by value.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or_else(|| self.error("truncated"))?;
        self.rest = tail;
        self.position += N;
        Ok(*head)
    }

    /// A reader over the next `n` bytes (positions continue from this one's).
    pub fn reader(&mut self, n: usize) -> Result<Reader<'a>, DecodeError> {
        let at = self.position;
        Ok(Reader::starting_at(self.bytes(n)?, at))
    }

    /// The next `n` bytes as UTF-8.
    pub fn str(&mut self, n: usize) -> Result<&'a str, DecodeError> {
        let at = self.position;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| DecodeError::new(at, "text is not UTF-8"))
    }

    /// A `u8`.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        self.array().map(u8::from_le_bytes)
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_le_bytes)
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_le_bytes)
    }

    /// A little-endian `i16`.
    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        self.array().map(i16::from_le_bytes)
    }

    /// A little-endian `i32`.
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        self.array().map(i32::from_le_bytes)
    }

    /// A little-endian `i64`.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        self.array().map(i64::from_le_bytes)
    }

    /// A count of items to follow, stored as a `u32` of `width` bytes (1 or 4): at most `max`,
    /// and no more than what remains could hold at `min_item_len` bytes each. So a damaged count
    /// can neither drive an allocation past the input's size nor a loop past its end.
    pub fn count(
        &mut self,
        width: CountWidth,
        min_item_len: usize,
        max: usize,
    ) -> Result<usize, DecodeError> {
        let at = self.position;
        let n = match width {
            CountWidth::U8 => usize::from(self.u8()?),
            CountWidth::U32 => usize::try_from(self.u32()?).unwrap_or(usize::MAX),
        };
        let fits = n
            .checked_mul(min_item_len.max(1))
            .is_some_and(|bytes| bytes <= self.remaining());
        if n > max {
            Err(DecodeError::new(at, "count exceeds the format's maximum"))
        } else if !fits {
            Err(DecodeError::new(
                at,
                "count exceeds what the bytes left can hold",
            ))
        } else {
            Ok(n)
        }
    }
}

/// How a count is stored (see [`Reader::count`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountWidth {
    /// One byte.
    U8,
    /// A little-endian `u32`.
    U32,
}

// ---- Writer ---------------------------------------------------------------------------------------

/// Bytes being encoded, little-endian.
#[derive(Clone, Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// What was written.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Raw bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// A `u8`.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    /// A little-endian `i16`.
    pub fn i16(&mut self, v: i16) {
        self.bytes(&v.to_le_bytes());
    }

    /// A little-endian `i32`.
    pub fn i32(&mut self, v: i32) {
        self.bytes(&v.to_le_bytes());
    }

    /// A little-endian `i64`.
    pub fn i64(&mut self, v: i64) {
        self.bytes(&v.to_le_bytes());
    }

    /// A count of items to follow, as a `u32`. Counts are bounded by the record types (each
    /// documents its maximum) far below `u32::MAX`; a larger one is written as `u32::MAX`, which
    /// fails to decode rather than meaning something else.
    pub fn count_u32(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    /// Overwrite the `u32` at `at`, which an earlier [`u32`](Self::u32) wrote.
    fn patch_u32(&mut self, at: usize, v: u32) {
        if let Some(slot) = self.buf.get_mut(at..at.saturating_add(4)) {
            slot.copy_from_slice(&v.to_le_bytes());
        }
    }

    fn written_since(&self, start: usize) -> &[u8] {
        self.buf.get(start..).unwrap_or_default()
    }
}

// ---- The envelope ---------------------------------------------------------------------------------

/// Bytes of the magic number.
pub const MAGIC_LEN: usize = 4;
/// Position of the version byte.
pub const VERSION_OFFSET: usize = MAGIC_LEN;
/// Position of the body length (versions that have one).
pub const LENGTH_OFFSET: usize = VERSION_OFFSET + 1;
/// Position of the body (versions with a length field).
pub const BODY_OFFSET: usize = LENGTH_OFFSET + 4;
/// Position of the body in a legacy version (no length field).
pub const LEGACY_BODY_OFFSET: usize = VERSION_OFFSET + 1;
/// Bytes of the CRC that ends every envelope.
pub const CRC_LEN: usize = 4;
/// Bytes of an envelope around its body (versions with a length field).
pub const ENVELOPE_LEN: usize = BODY_OFFSET + CRC_LEN;

/// One metadata file's envelope: its magic number and the versions this release reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The magic number the file starts with.
    pub magic: [u8; MAGIC_LEN],
    /// The version this release writes (with a length field).
    pub version: u8,
    /// Older versions still read, written before the envelope had a length field.
    pub legacy: &'static [u8],
}

impl Envelope {
    /// Whether files of `version` carry a length field: every version but the legacy ones (so
    /// also versions this release does not know, for [`seal_raw`](Self::seal_raw)).
    pub fn has_length(&self, version: u8) -> bool {
        !self.legacy.contains(&version)
    }

    /// Whether this release reads `version`.
    pub fn reads(&self, version: u8) -> bool {
        version == self.version || self.legacy.contains(&version)
    }

    /// Append an envelope of the current version holding what `body` writes.
    pub fn seal(&self, w: &mut Writer, body: impl FnOnce(&mut Writer)) {
        let start = w.len();
        w.bytes(&self.magic);
        w.u8(self.version);
        let length_at = w.len();
        w.u32(0);
        body(w);
        let body_len = w.len() - length_at - 4;
        // A body past 4 GiB cannot be written (no record comes near); `u32::MAX` then makes the
        // file fail to decode instead of being read short.
        w.patch_u32(length_at, u32::try_from(body_len).unwrap_or(u32::MAX));
        let crc = crc32(w.written_since(start));
        w.u32(crc);
    }

    /// `body` sealed as `version` (known or not), with a length field unless `version` is a
    /// legacy one, and a valid CRC. For tests and fuzzing, to build files of every version and
    /// to get arbitrary bodies past the checksum.
    #[doc(hidden)]
    pub fn seal_raw(&self, version: u8, body: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(&self.magic);
        w.u8(version);
        if self.has_length(version) {
            w.u32(u32::try_from(body.len()).unwrap_or(u32::MAX));
        }
        w.bytes(body);
        let crc = crc32(&w.buf);
        w.u32(crc);
        w.into_vec()
    }

    /// Open the envelope that is all of `r`'s remaining bytes: check the magic, the version, the
    /// length and the CRC, and return the version and a reader over the body (positions still
    /// count from the file's start).
    pub fn open<'a>(&self, r: &mut Reader<'a>) -> Result<(u8, Reader<'a>), DecodeError> {
        let start = r.position();
        let file = r.bytes(r.remaining())?;
        let Some((covered, stored_crc)) = file.split_last_chunk::<CRC_LEN>() else {
            return Err(DecodeError::new(start, "truncated"));
        };
        let mut head = Reader::starting_at(covered, start);
        if head.array::<MAGIC_LEN>()? != self.magic {
            return Err(DecodeError::new(start, "bad magic"));
        }
        let version_at = head.position();
        let version = head.u8()?;
        if !self.reads(version) {
            return Err(DecodeError::new(version_at, "unknown version"));
        }
        if self.has_length(version) {
            let length_at = head.position();
            let length = head.u32()?;
            if usize::try_from(length).ok() != Some(head.remaining()) {
                return Err(DecodeError::new(
                    length_at,
                    "body length does not match the file's size",
                ));
            }
        }
        if crc32(covered) != u32::from_le_bytes(*stored_crc) {
            return Err(DecodeError::new(start + covered.len(), "CRC mismatch"));
        }
        Ok((version, head))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(
        clippy::indexing_slicing,
        reason = "tests index fixtures they built themselves"
    )]

    use super::*;

    /// The codec's promises for `x`: it round trips; every truncation and an appended byte are
    /// errors; every single-bit flip is an error or decodes to a value that encodes to exactly the
    /// flipped bytes (a checksummed record: always an error), so no damage is misread silently as
    /// some other encoding.
    pub(crate) fn check_record<T>(x: &T)
    where
        T: Encode + Decode + PartialEq + fmt::Debug,
    {
        let b = x.encode_to_vec();
        assert_eq!(&T::decode(&b).unwrap(), x, "round trip");
        for n in 0..b.len() {
            let e = T::decode(&b[..n]).expect_err("a truncation decoded");
            assert!(e.position <= n, "error past the input: {e}");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(T::decode(&long).is_err(), "a byte too many decoded");
        for bit in 0..b.len() * 8 {
            let mut d = b.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            match T::decode(&d) {
                Err(e) => assert!(e.position <= d.len()),
                Ok(y) => {
                    let again = y.encode_to_vec();
                    assert_eq!(T::decode(&again).unwrap(), y, "bit {bit}");
                    assert_eq!(again, d, "bit {bit}: a flip decoded to something else");
                }
            }
        }
    }

    const TEST: Envelope = Envelope {
        magic: *b"TEST",
        version: 3,
        legacy: &[1, 2],
    };

    #[test]
    fn reader_reads_in_order_and_never_past_the_end() {
        let bytes = [
            1u8, 2, 0, 3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(2));
        assert_eq!(r.u32(), Ok(3));
        assert_eq!(r.position(), 7);
        let mut copy = r.clone();
        assert_eq!(r.i64(), Ok(i64::MAX));
        assert_eq!(r.finish(), Ok(()));
        assert_eq!(r.u8(), Err(DecodeError::new(15, "truncated")));
        assert_eq!(copy.bytes(9).unwrap_err().position, 7);
        assert_eq!(copy.bytes(usize::MAX).unwrap_err().position, 7);
        assert_eq!(copy.remaining(), 8, "a failed read consumes nothing");
        assert!(copy.finish().is_err());
    }

    #[test]
    fn counts_are_bounded_by_their_maximum_and_by_what_remains() {
        let mut b = 3u32.to_le_bytes().to_vec();
        b.extend_from_slice(&[0; 6]);
        assert_eq!(Reader::new(&b).count(CountWidth::U32, 2, 3), Ok(3));
        assert!(Reader::new(&b).count(CountWidth::U32, 2, 2).is_err());
        assert!(Reader::new(&b).count(CountWidth::U32, 3, 10).is_err());
        let huge = u32::MAX.to_le_bytes();
        let e = Reader::new(&huge).count(CountWidth::U32, 0, usize::MAX);
        assert_eq!(e.unwrap_err().position, 0);
        assert_eq!(Reader::new(&[2, 0, 0]).count(CountWidth::U8, 1, 5), Ok(2));
    }

    #[test]
    fn strings_must_be_utf8() {
        let mut r = Reader::new(b"ok\xff");
        assert_eq!(r.str(2), Ok("ok"));
        assert_eq!(r.str(1), Err(DecodeError::new(2, "text is not UTF-8")));
    }

    #[test]
    fn envelope_layout_and_checks() {
        let mut w = Writer::new();
        TEST.seal(&mut w, |w| w.u64(0x0102_0304_0506_0708));
        let b = w.into_vec();
        assert_eq!(b.len(), ENVELOPE_LEN + 8);
        assert_eq!(&b[..MAGIC_LEN], b"TEST");
        assert_eq!(b[VERSION_OFFSET], 3);
        assert_eq!(b[LENGTH_OFFSET..BODY_OFFSET], 8u32.to_le_bytes());
        assert_eq!(b[BODY_OFFSET], 8);
        let crc_at = b.len() - CRC_LEN;
        assert_eq!(b[crc_at..], crc32fast::hash(&b[..crc_at]).to_le_bytes());
        assert_eq!(b, TEST.seal_raw(3, &0x0102_0304_0506_0708u64.to_le_bytes()));

        let open = |b: &[u8]| {
            let mut r = Reader::new(b);
            let (version, mut body) = TEST.open(&mut r)?;
            assert_eq!(r.remaining(), 0, "the envelope takes everything");
            let v = body.u64()?;
            body.finish()?;
            Ok::<_, DecodeError>((version, v))
        };
        assert_eq!(open(&b), Ok((3, 0x0102_0304_0506_0708)));
        // Legacy versions: no length field.
        let legacy = TEST.seal_raw(1, &7u64.to_le_bytes());
        assert_eq!(legacy.len(), LEGACY_BODY_OFFSET + 8 + CRC_LEN);
        assert_eq!(open(&legacy), Ok((1, 7)));

        let reason = |b: &[u8]| open(b).unwrap_err().reason;
        assert_eq!(reason(&[]), "truncated");
        assert_eq!(reason(&b[..6]), "truncated");
        assert_eq!(reason(&TEST.seal_raw(4, &[0; 8])), "unknown version");
        assert_eq!(reason(&TEST.seal_raw(0, &[0; 8])), "unknown version");
        let mut other = b.clone();
        other[0] = b'X';
        assert_eq!(reason(&other), "bad magic");
        let mut long = b.clone();
        long.insert(BODY_OFFSET, 0);
        assert_eq!(reason(&long), "body length does not match the file's size");
        let mut flipped = b.clone();
        flipped[BODY_OFFSET + 3] ^= 4;
        let e = open(&flipped).unwrap_err();
        assert_eq!((e.position, e.reason), (crc_at, "CRC mismatch"));
        for n in 0..b.len() {
            assert!(open(&b[..n]).is_err(), "cut to {n}");
        }
    }

    #[test]
    fn errors_name_the_file_and_what_it_holds() {
        let e =
            DecodeError::new(9, "CRC mismatch").corrupt(Path::new("/p/checkpoint"), "checkpoint");
        let message = e.to_string();
        assert!(message.contains("/p/checkpoint"), "{message}");
        assert!(
            message.contains("at byte 9: checkpoint: CRC mismatch"),
            "{message}"
        );
        assert!(matches!(e, crate::Error::Corrupt { position: 9, .. }));
    }
}
