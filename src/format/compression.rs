//! Kafka's four compression codecs, byte for byte as Kafka frames them inside a record batch.
//!
//! A compressed batch (attributes bits 0-2 not zero) holds its records as one compressed stream.
//! [`compress`] writes that stream as Kafka's Java client writes it; [`decompress`] reads what the
//! Java client, librdkafka and this module write. Each codec sits behind its own Cargo feature;
//! every [`Compression`] variant exists in every build and a codec that is not compiled in is
//! [`CodecError::Unavailable`].
//!
//! | codec | stream | what Kafka's Java client writes (`org.apache.kafka.common.compress`) |
//! |---|---|---|
//! | gzip | RFC 1952 gzip | `GzipCompression`: `java.util.zip.GZIPOutputStream`, deflate level 6 |
//! | snappy | xerial snappy-java framing | `SnappyCompression`: `SnappyOutputStream` (16-byte header, then 32 KiB blocks each behind a big-endian length) |
//! | lz4 | LZ4 frame | `Lz4BlockOutputStream` (once `KafkaLZ4BlockOutputStream`): 64 KiB independent blocks, no checksums, no content size |
//! | zstd | zstd frame | `ZstdCompression`: zstd-jni `ZstdOutputStreamNoFinalizer`, level 3 |
//!
//! Decompression is meant for damaged or hostile input: it never panics, appends at most
//! `max_len` bytes (reporting [`CodecError::TooLarge`] as soon as the stream would produce
//! more), sizes every allocation by what it has decoded or by `max_len`, never by a length field
//! alone, and leaves `out` as it found it when it fails.

use std::fmt;
use std::str::FromStr;

/// A record batch's compression codec: attribute bits 0-2 of a batch. Kafka:
/// `compression.type` (producer and topic setting), `CompressionType` (Java client).
///
/// Every variant exists whatever Cargo features are on; [`is_available`](Self::is_available)
/// says whether this build can compress and decompress with it (features `gzip`, `snappy`,
/// `lz4`, `zstd`; `lz4` and `zstd` are on by default).
///
/// # Examples
/// ```
/// use topiclog::Compression;
///
/// let codec: Compression = "zstd".parse()?;
/// assert_eq!(codec, Compression::Zstd);
/// assert_eq!(codec.attribute_bits(), 4);
/// assert_eq!(Compression::from_attributes(0x0014)?, Compression::Zstd); // bit 4 (transactional) ignored
/// assert_eq!(codec.to_string(), "zstd");
/// assert_eq!(Compression::default(), Compression::None);
/// # Ok::<(), &'static str>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Records are stored as sent. Kafka: `none` (attribute bits 0).
    #[default]
    None,
    /// gzip (deflate in an RFC 1952 gzip stream). Kafka: `gzip` (attribute bits 1). Needs the
    /// `gzip` feature.
    Gzip,
    /// Snappy in snappy-java's stream framing. Kafka: `snappy` (attribute bits 2). Needs the
    /// `snappy` feature.
    Snappy,
    /// An LZ4 frame. Kafka: `lz4` (attribute bits 3). Needs the `lz4` feature (on by default).
    Lz4,
    /// A zstd frame. Kafka: `zstd` (attribute bits 4). Needs the `zstd` feature (on by default).
    Zstd,
}

/// The bits of a batch's attributes that hold the codec (Kafka: `COMPRESSION_CODEC_MASK`).
const CODEC_MASK: u16 = 0x07;

impl Compression {
    /// The codec's value in bits 0-2 of a batch's attributes: 0 none, 1 gzip, 2 snappy, 3 lz4,
    /// 4 zstd (Kafka: `CompressionType.id`).
    ///
    /// ```
    /// use topiclog::Compression;
    /// assert_eq!(Compression::None.attribute_bits(), 0);
    /// assert_eq!(Compression::Lz4.attribute_bits(), 3);
    /// ```
    #[must_use]
    pub const fn attribute_bits(self) -> u16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec named by bits 0-2 of a batch's `attributes` (the other bits are ignored).
    /// Kafka: `CompressionType.forId`.
    ///
    /// # Errors
    /// `"unknown compression codec"` for the values 5, 6 and 7, which Kafka does not define.
    ///
    /// ```
    /// use topiclog::Compression;
    /// assert_eq!(Compression::from_attributes(0x0001), Ok(Compression::Gzip));
    /// assert_eq!(Compression::from_attributes(0x0005), Err("unknown compression codec"));
    /// ```
    pub const fn from_attributes(attributes: u16) -> Result<Compression, &'static str> {
        match attributes & CODEC_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            _ => Err("unknown compression codec"),
        }
    }

    /// Kafka's name of the codec, as `compression.type` spells it: `none`, `gzip`, `snappy`,
    /// `lz4` or `zstd` (Kafka: `CompressionType.name`). [`FromStr`] parses the same names.
    ///
    /// ```
    /// use topiclog::Compression;
    /// assert_eq!(Compression::Snappy.name(), "snappy");
    /// ```
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Whether this build can compress and decompress with the codec: its Cargo feature
    /// (`gzip`, `snappy`, `lz4`, `zstd`) was on. [`None`](Self::None) always is.
    ///
    /// ```
    /// use topiclog::Compression;
    /// assert!(Compression::None.is_available());
    /// assert_eq!(Compression::Zstd.is_available(), cfg!(feature = "zstd"));
    /// ```
    #[must_use]
    pub const fn is_available(self) -> bool {
        match self {
            Compression::None => true,
            Compression::Gzip => cfg!(feature = "gzip"),
            Compression::Snappy => cfg!(feature = "snappy"),
            Compression::Lz4 => cfg!(feature = "lz4"),
            Compression::Zstd => cfg!(feature = "zstd"),
        }
    }
}

/// Kafka's name of the codec ([`Compression::name`]).
impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses Kafka's `compression.type` names, exactly as Kafka spells them (lower case): `none`,
/// `gzip`, `snappy`, `lz4`, `zstd`. A broker's `producer` (keep the producer's codec) is not a
/// codec and is refused.
///
/// ```
/// use topiclog::Compression;
/// assert_eq!("lz4".parse(), Ok(Compression::Lz4));
/// assert!("LZ4".parse::<Compression>().is_err());
/// ```
impl FromStr for Compression {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "snappy" => Ok(Compression::Snappy),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            _ => Err("unknown compression type: expected none, gzip, snappy, lz4 or zstd"),
        }
    }
}

/// Why [`compress`] or [`decompress`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// The codec's Cargo feature is off in this build ([`Compression::is_available`]).
    Unavailable(Compression),
    /// The stream decompresses to more than `max` bytes (the `max_len` passed to
    /// [`decompress`]); decoding stopped there.
    TooLarge {
        /// The limit that was passed.
        max: usize,
    },
    /// The bytes are not a valid stream of the codec: what is wrong with them. [`compress`]
    /// reports a failure of the codec library itself this way too (none is known to happen).
    Corrupt(&'static str),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Unavailable(codec) => write!(
                f,
                "compression codec {codec} is not compiled in (enable topiclog's Cargo feature \"{codec}\")"
            ),
            CodecError::TooLarge { max } => {
                write!(f, "compressed data decompresses to more than {max} bytes")
            }
            CodecError::Corrupt(what) => write!(f, "corrupt compressed data: {what}"),
        }
    }
}

impl std::error::Error for CodecError {}

/// Appends `input`, compressed with `codec` and framed exactly as Kafka's Java client frames it
/// inside a record batch (see the module documentation), to `out`. [`Compression::None`]
/// appends `input` as it is.
///
/// # Errors
/// [`CodecError::Unavailable`] if `codec`'s feature is off (`out` is then unchanged).
pub fn compress(codec: Compression, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    let result = match codec {
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        #[cfg(feature = "gzip")]
        Compression::Gzip => gzip::compress(input, out),
        #[cfg(feature = "snappy")]
        Compression::Snappy => snappy::compress(input, out),
        #[cfg(feature = "lz4")]
        Compression::Lz4 => lz4::compress(input, out),
        #[cfg(feature = "zstd")]
        Compression::Zstd => zstd::compress(input, out),
        #[allow(
            unreachable_patterns,
            reason = "reached only when a codec's feature is off"
        )]
        _ => Err(CodecError::Unavailable(codec)),
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Appends the decompressed content of `input`, a `codec` stream, to `out`: at most `max_len`
/// bytes. Reads what Kafka's Java client and librdkafka write (and what [`compress`] writes),
/// including gzip members and zstd or LZ4 frames one after another, snappy without snappy-java's
/// framing, and LZ4 frames with linked blocks, checksums or a content size.
///
/// Safe on arbitrary input: it never panics, allocates at most about `max_len` bytes for the
/// output (plus one codec block of working memory), and on any error leaves `out` as it was.
///
/// # Errors
/// - [`CodecError::Unavailable`] if `codec`'s feature is off;
/// - [`CodecError::TooLarge`] as soon as the content turns out longer than `max_len`;
/// - [`CodecError::Corrupt`] if `input` is not one complete, valid stream of `codec`
///   (truncated, damaged, trailing bytes, a failed checksum).
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let start = out.len();
    let limit = start.saturating_add(max_len);
    let result = match codec {
        Compression::None => {
            if input.len() > max_len {
                Err(CodecError::TooLarge { max: max_len })
            } else {
                out.extend_from_slice(input);
                Ok(())
            }
        }
        #[cfg(feature = "gzip")]
        Compression::Gzip => gzip::decompress(input, limit, out),
        #[cfg(feature = "snappy")]
        Compression::Snappy => snappy::decompress(input, limit, out),
        #[cfg(feature = "lz4")]
        Compression::Lz4 => lz4::decompress(input, limit, out),
        #[cfg(feature = "zstd")]
        Compression::Zstd => zstd::decompress(input, max_len, limit, out),
        #[allow(
            unreachable_patterns,
            reason = "reached only when a codec's feature is off"
        )]
        _ => Err(CodecError::Unavailable(codec)),
    };
    // Every codec reports `TooLarge` with the absolute limit it was given; report the caller's.
    let result = match result {
        Err(CodecError::TooLarge { .. }) => Err(CodecError::TooLarge { max: max_len }),
        Ok(()) if out.len() > limit => Err(CodecError::TooLarge { max: max_len }),
        other => other,
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// The error for output past `limit` (its `max` is replaced by the caller's `max_len`).
#[cfg(any(
    feature = "gzip",
    feature = "snappy",
    feature = "lz4",
    feature = "zstd"
))]
const TOO_LARGE: CodecError = CodecError::TooLarge { max: 0 };

/// Output grows by at least this much at a time while a stream is decoded.
#[cfg(any(feature = "gzip", feature = "zstd"))]
const GROW_STEP: usize = 64 << 10;

/// Reserves room in `out` for `additional` more bytes, doubling its capacity as `Vec` would but
/// never past `limit` (unless `additional` itself goes past it), so decoding up to `limit` never
/// holds twice that.
#[cfg(any(
    feature = "gzip",
    feature = "snappy",
    feature = "lz4",
    feature = "zstd"
))]
fn reserve_within(out: &mut Vec<u8>, additional: usize, limit: usize) {
    let needed = out.len().saturating_add(additional);
    if needed <= out.capacity() {
        return;
    }
    let target = needed.max(out.capacity().saturating_mul(2).min(limit));
    out.reserve_exact(target - out.len());
}

/// Makes room in `out` for more output of a stream whose length is not known: at least
/// [`GROW_STEP`], or the room left before `limit` if that is less. Does nothing if there is room.
#[cfg(any(feature = "gzip", feature = "zstd"))]
fn grow_towards(out: &mut Vec<u8>, limit: usize) {
    if out.capacity() > out.len() {
        return;
    }
    reserve_within(out, GROW_STEP.min(limit.saturating_sub(out.len())), limit);
}

/// Reads `reader` to its end, appending to `out` while `out` stays within `limit` bytes.
///
/// `TooLarge` as soon as one byte more than `limit` could be read; `Corrupt(what)` for any read
/// error. Memory: `out` grows geometrically but never past `limit`.
#[cfg(feature = "gzip")]
fn read_bounded(
    reader: &mut impl std::io::Read,
    limit: usize,
    out: &mut Vec<u8>,
    what: &'static str,
) -> Result<(), CodecError> {
    use std::io::ErrorKind;
    loop {
        let len = out.len();
        if len >= limit {
            // Full: the stream must end here.
            let mut probe = [0u8; 1];
            return match reader.read(&mut probe) {
                Ok(0) => Ok(()),
                Ok(_) => Err(TOO_LARGE),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => Err(CodecError::Corrupt(what)),
            };
        }
        grow_towards(out, limit);
        let room = out
            .capacity()
            .min(limit)
            .saturating_sub(len)
            .clamp(1, GROW_STEP);
        out.resize(len + room, 0);
        let read = match out.get_mut(len..) {
            Some(spare) => reader.read(spare),
            None => Ok(0),
        };
        match read {
            Ok(0) => {
                out.truncate(len);
                return Ok(());
            }
            Ok(n) => out.truncate(len + n.min(room)),
            Err(e) if e.kind() == ErrorKind::Interrupted => out.truncate(len),
            Err(_) => {
                out.truncate(len);
                return Err(CodecError::Corrupt(what));
            }
        }
    }
}

/// gzip: what `java.util.zip.GZIPOutputStream` writes for Kafka's `GzipCompression`, and what
/// librdkafka writes through zlib (`deflateInit2(.., 15 + 16, ..)`).
#[cfg(feature = "gzip")]
mod gzip {
    use std::io::Write as _;

    use flate2::bufread::MultiGzDecoder;
    use flate2::write::GzEncoder;

    use super::{read_bounded, CodecError};

    /// Kafka's default gzip level: `GZIP.defaultLevel()` is `Deflater.DEFAULT_COMPRESSION` (-1),
    /// which zlib (and so the JDK) takes as level 6.
    const LEVEL: u32 = 6;

    /// One gzip member: the 10-byte header `1f 8b 08 00 00000000 00 ff` (no name, no mtime, OS
    /// "unknown", as a current JDK writes it), deflate, CRC-32 and length.
    pub(super) fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let mut encoder = GzEncoder::new(out, flate2::Compression::new(LEVEL));
        encoder
            .write_all(input)
            .and_then(|()| encoder.try_finish())
            .map_err(|_| CodecError::Corrupt("gzip compression failed"))
    }

    /// One or more gzip members back to back (`GZIPInputStream` reads on into a following member
    /// too); each member's CRC-32 and length are checked. Unlike `GZIPInputStream`, which stops
    /// quietly at bytes after a member that do not start another, such bytes are an error.
    pub(super) fn decompress(
        input: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        if input.is_empty() {
            return Err(CodecError::Corrupt("empty gzip stream"));
        }
        read_bounded(
            &mut MultiGzDecoder::new(input),
            limit,
            out,
            "invalid gzip stream",
        )
    }
}

/// Snappy as Kafka's Java client frames it: snappy-java's `SnappyOutputStream`.
///
/// The stream is snappy-java's 16-byte header (`SnappyCodec`: the magic `\x82SNAPPY\0`, then the
/// `int`s `DEFAULT_VERSION` 1 and `MINIMUM_COMPATIBLE_VERSION` 1, big-endian as `DataOutputStream`
/// writes them), then one chunk per 32 KiB of input (`SnappyOutputStream.DEFAULT_BLOCK_SIZE`, the
/// size `SnappyCompression.wrapForOutput` leaves it at): the raw snappy block's length as a
/// big-endian `int`, then the block. librdkafka writes raw snappy without any of this, and
/// snappy-java's `SnappyInputStream` (like librdkafka's reader) reads input that does not start
/// with the 8 magic bytes as one raw snappy block, so both are read here.
#[cfg(feature = "snappy")]
mod snappy {
    use snap::raw::{decompress_len, max_compress_len, Decoder, Encoder};

    use super::{reserve_within, CodecError, TOO_LARGE};

    /// `SnappyCodec.MAGIC_HEADER`: `{-126, 'S', 'N', 'A', 'P', 'P', 'Y', 0}`.
    pub(super) const MAGIC: [u8; 8] = *b"\x82SNAPPY\x00";
    /// `SnappyCodec.HEADER_SIZE`: the magic and two `int`s.
    pub(super) const HEADER_LEN: usize = 16;
    /// The whole header `SnappyOutputStream` writes: magic, `DEFAULT_VERSION` (1) and
    /// `MINIMUM_COMPATIBLE_VERSION` (1).
    pub(super) const HEADER: [u8; HEADER_LEN] = *b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
    /// `SnappyOutputStream.DEFAULT_BLOCK_SIZE`: input bytes per chunk.
    pub(super) const BLOCK_SIZE: usize = 32 * 1024;
    /// `SnappyCodec.MINIMUM_COMPATIBLE_VERSION`: a header inside the stream (snappy-java streams
    /// concatenated) must have at least this version.
    const MINIMUM_COMPATIBLE_VERSION: u32 = 1;

    pub(super) fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        // snappy-java writes its header on close even when nothing was written.
        out.extend_from_slice(&HEADER);
        let mut encoder = Encoder::new();
        for block in input.chunks(BLOCK_SIZE) {
            let at = out.len();
            out.resize(at + 4 + max_compress_len(block.len()), 0);
            let n = out
                .get_mut(at + 4..)
                .ok_or(CodecError::Corrupt("snappy compression failed"))
                .and_then(|dst| {
                    encoder
                        .compress(block, dst)
                        .map_err(|_| CodecError::Corrupt("snappy compression failed"))
                })?;
            let len = u32::try_from(n).map_err(|_| CodecError::Corrupt("snappy block too long"))?;
            if let Some(prefix) = out.get_mut(at..at + 4) {
                prefix.copy_from_slice(&len.to_be_bytes());
            }
            out.truncate(at + 4 + n);
        }
        Ok(())
    }

    pub(super) fn decompress(
        input: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        match input.get(..HEADER_LEN) {
            // `SnappyInputStream.readHeader` checks only the magic of the first header; its
            // version fields are not read.
            Some(header) if header.starts_with(&MAGIC) => {
                framed(input.get(HEADER_LEN..).unwrap_or_default(), limit, out)
            }
            // Shorter than a header, or another start: raw snappy (as `SnappyInputStream`
            // and librdkafka fall back to). Raw snappy is at least one byte long.
            _ if input.is_empty() => Err(CodecError::Corrupt("empty snappy stream")),
            _ => raw_block(input, limit, out),
        }
    }

    /// The chunks after a snappy-java header.
    fn framed(mut rest: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        const MAGIC_HEAD: [u8; 4] = [0x82, b'S', b'N', b'A'];
        while !rest.is_empty() {
            let Some((&len_bytes, after)) = rest.split_first_chunk::<4>() else {
                // `SnappyInputStream` stops quietly here; librdkafka reports trailing bytes.
                return Err(CodecError::Corrupt("truncated snappy-java chunk length"));
            };
            if len_bytes == MAGIC_HEAD {
                // Another stream's header (`SnappyInputStream.hasNextChunk`: a "chunk length"
                // equal to `MAGIC_HEADER_HEAD`, which cannot be a length as it is negative).
                let header = rest
                    .get(..HEADER_LEN)
                    .ok_or(CodecError::Corrupt("truncated snappy-java header"))?;
                let version = header
                    .get(8..12)
                    .and_then(|v| v.try_into().ok())
                    .map_or(0, u32::from_be_bytes);
                if !header.starts_with(&MAGIC) {
                    return Err(CodecError::Corrupt("invalid snappy-java header"));
                }
                if version < MINIMUM_COMPATIBLE_VERSION || version > i32::MAX as u32 {
                    return Err(CodecError::Corrupt("incompatible snappy-java version"));
                }
                rest = rest.get(HEADER_LEN..).unwrap_or_default();
                continue;
            }
            let len = u32::from_be_bytes(len_bytes);
            // Java reads the length as an `int`: negative is an error there.
            if len > i32::MAX as u32 {
                return Err(CodecError::Corrupt("invalid snappy-java chunk length"));
            }
            let len = len as usize;
            let block = after
                .get(..len)
                .ok_or(CodecError::Corrupt("truncated snappy-java chunk"))?;
            raw_block(block, limit, out)?;
            rest = after.get(len..).unwrap_or_default();
        }
        Ok(())
    }

    /// One raw snappy block: its varint content length, then its elements.
    fn raw_block(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let len = decompress_len(block)
            .map_err(|_| CodecError::Corrupt("invalid snappy block length"))?;
        // No snappy element produces more than 64 bytes from 3 (a 2-byte-offset copy), so a
        // block cannot decode to more than 22 times its length: garbage, not a large block.
        if len > block.len().saturating_mul(22) {
            return Err(CodecError::Corrupt(
                "snappy block length impossible for its size",
            ));
        }
        let at = out.len();
        if len > limit.saturating_sub(at) {
            return Err(TOO_LARGE);
        }
        reserve_within(out, len, limit);
        out.resize(at + len, 0);
        let written = match out.get_mut(at..) {
            Some(dst) => Decoder::new()
                .decompress(block, dst)
                .map_err(|_| CodecError::Corrupt("invalid snappy block"))?,
            None => 0,
        };
        if written != len {
            return Err(CodecError::Corrupt("snappy block shorter than its length"));
        }
        Ok(())
    }
}

/// LZ4 frames (the LZ4 frame format, v1.6.x), as Kafka's `Lz4BlockOutputStream` writes them for
/// record batches of magic 2.
#[cfg(feature = "lz4")]
mod lz4 {
    use lz4_flex::block::{
        compress_into, decompress_into, decompress_into_with_dict, get_maximum_output_size,
        DecompressError,
    };
    use twox_hash::XxHash32;

    use super::{reserve_within, CodecError, TOO_LARGE};

    /// `Lz4BlockOutputStream.MAGIC` (little-endian on the wire).
    pub(super) const MAGIC: u32 = 0x184D_2204;
    /// Skippable frames: magic `0x184D2A50` to `0x184D2A5F`, a length, and bytes to skip.
    const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
    /// FLG as Kafka writes it: `FLG(blockChecksum = false)`: version 1 (bits 7-6 = `01`), block
    /// independence (bit 5); no block checksum (bit 4), no content size (bit 3, "TODO write
    /// uncompressed content size"), no content checksum (bit 2), no dictionary (bit 0).
    pub(super) const KAFKA_FLG: u8 = 0b0110_0000;
    /// BD as Kafka writes it: `BD(BLOCKSIZE_64KB)`, block maximum size 4 (64 KiB) in bits 6-4.
    pub(super) const KAFKA_BD: u8 = 4 << 4;
    /// Kafka's block size: `BD.getBlockMaximumSize()` of `BLOCKSIZE_64KB`, 2^(2*4+8).
    pub(super) const KAFKA_BLOCK_SIZE: usize = 64 << 10;
    /// `LZ4_FRAME_INCOMPRESSIBLE_MASK`: a block size with this bit holds stored bytes.
    const INCOMPRESSIBLE: u32 = 0x8000_0000;
    /// How far back a match in a linked block may reach (LZ4's window).
    const WINDOW: usize = 64 << 10;

    const FLG_VERSION_MASK: u8 = 0b1100_0000;
    const FLG_VERSION_1: u8 = 0b0100_0000;
    const FLG_BLOCK_INDEPENDENCE: u8 = 1 << 5;
    const FLG_BLOCK_CHECKSUM: u8 = 1 << 4;
    const FLG_CONTENT_SIZE: u8 = 1 << 3;
    const FLG_CONTENT_CHECKSUM: u8 = 1 << 2;
    const FLG_RESERVED: u8 = 1 << 1;
    const FLG_DICT_ID: u8 = 1;
    const BD_RESERVED: u8 = 0b1000_1111;

    /// The frame descriptor's checksum byte: the second byte of the xxHash32 (seed 0) of the
    /// descriptor (FLG to the last optional field). Kafka: `(checksum.hash(..) >> 8) & 0xFF`
    /// over FLG and BD (correct since magic 1; only magic 0 used the "broken" one that also
    /// covered the magic).
    pub(super) fn header_checksum(descriptor: &[u8]) -> u8 {
        (XxHash32::oneshot(0, descriptor) >> 8) as u8
    }

    /// Kafka's frame: magic, FLG, BD, HC; 64 KiB independent blocks, each stored as it is when
    /// compressing does not make it shorter (`compressedLength >= bufferOffset` in
    /// `writeBlock`); the end mark (a zero `u32`) and no content checksum (`writeEndMark`).
    pub(super) fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[KAFKA_FLG, KAFKA_BD, header_checksum(&[KAFKA_FLG, KAFKA_BD])]);
        for block in input.chunks(KAFKA_BLOCK_SIZE) {
            let at = out.len();
            out.resize(at + 4 + get_maximum_output_size(block.len()), 0);
            let compressed = out
                .get_mut(at + 4..)
                .and_then(|dst| compress_into(block, dst).ok())
                .ok_or(CodecError::Corrupt("lz4 compression failed"))?;
            // Both lengths are at most 64 KiB plus a little, so they fit the 31 bits.
            let size = if compressed >= block.len() {
                out.truncate(at + 4);
                out.extend_from_slice(block);
                block.len() as u32 | INCOMPRESSIBLE
            } else {
                out.truncate(at + 4 + compressed);
                compressed as u32
            };
            if let Some(prefix) = out.get_mut(at..at + 4) {
                prefix.copy_from_slice(&size.to_le_bytes());
            }
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        Ok(())
    }

    /// Reads `N` bytes off the front of `rest`.
    fn take<const N: usize>(rest: &mut &[u8], what: &'static str) -> Result<[u8; N], CodecError> {
        let (&bytes, after) = rest
            .split_first_chunk::<N>()
            .ok_or(CodecError::Corrupt(what))?;
        *rest = after;
        Ok(bytes)
    }

    fn take_u32(rest: &mut &[u8], what: &'static str) -> Result<u32, CodecError> {
        take::<4>(rest, what).map(u32::from_le_bytes)
    }

    /// Any LZ4 frames, one after another, and skippable frames between them.
    pub(super) fn decompress(
        input: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        if input.is_empty() {
            return Err(CodecError::Corrupt("empty lz4 stream"));
        }
        let mut rest = input;
        while !rest.is_empty() {
            let magic = take_u32(&mut rest, "truncated lz4 frame magic")?;
            if magic & 0xFFFF_FFF0 == SKIPPABLE_MAGIC {
                let len = take_u32(&mut rest, "truncated lz4 skippable frame")? as usize;
                rest = rest
                    .get(len..)
                    .ok_or(CodecError::Corrupt("truncated lz4 skippable frame"))?;
                continue;
            }
            if magic != MAGIC {
                return Err(CodecError::Corrupt("not an lz4 frame"));
            }
            rest = frame(rest, limit, out)?;
        }
        Ok(())
    }

    /// One frame after its magic; returns what follows it.
    fn frame<'a>(
        mut rest: &'a [u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<&'a [u8], CodecError> {
        let descriptor_start = rest;
        let [flg, bd] = take::<2>(&mut rest, "truncated lz4 frame descriptor")?;
        if flg & FLG_VERSION_MASK != FLG_VERSION_1 {
            return Err(CodecError::Corrupt("unsupported lz4 frame version"));
        }
        if flg & FLG_RESERVED != 0 || bd & BD_RESERVED != 0 {
            return Err(CodecError::Corrupt("lz4 frame reserved bits set"));
        }
        let block_max = match (bd >> 4) & 0x07 {
            4 => 64 << 10,
            5 => 256 << 10,
            6 => 1 << 20,
            7 => 4 << 20,
            _ => return Err(CodecError::Corrupt("invalid lz4 block maximum size")),
        };
        let content_size = if flg & FLG_CONTENT_SIZE != 0 {
            Some(u64::from_le_bytes(take::<8>(
                &mut rest,
                "truncated lz4 frame descriptor",
            )?))
        } else {
            None
        };
        if flg & FLG_DICT_ID != 0 {
            return Err(CodecError::Corrupt("lz4 frame needs a dictionary"));
        }
        let descriptor_len = descriptor_start.len() - rest.len();
        let [hc] = take::<1>(&mut rest, "truncated lz4 frame descriptor")?;
        let descriptor = descriptor_start.get(..descriptor_len).unwrap_or_default();
        if hc != header_checksum(descriptor) {
            return Err(CodecError::Corrupt(
                "lz4 frame descriptor checksum mismatch",
            ));
        }
        let frame_start = out.len();
        if let Some(size) = content_size {
            if size > limit.saturating_sub(frame_start) as u64 {
                return Err(TOO_LARGE);
            }
        }
        let linked = flg & FLG_BLOCK_INDEPENDENCE == 0;
        loop {
            let size = take_u32(&mut rest, "truncated lz4 frame: no end mark")?;
            if size == 0 {
                break;
            }
            let stored = size & INCOMPRESSIBLE != 0;
            let len = (size & !INCOMPRESSIBLE) as usize;
            if len > block_max {
                return Err(CodecError::Corrupt(
                    "lz4 block larger than the frame allows",
                ));
            }
            let data = rest
                .get(..len)
                .ok_or(CodecError::Corrupt("truncated lz4 block"))?;
            rest = rest.get(len..).unwrap_or_default();
            if flg & FLG_BLOCK_CHECKSUM != 0 {
                let sum = take_u32(&mut rest, "truncated lz4 block checksum")?;
                if sum != XxHash32::oneshot(0, data) {
                    return Err(CodecError::Corrupt("lz4 block checksum mismatch"));
                }
            }
            let at = out.len();
            let room = limit.saturating_sub(at);
            if stored {
                if len > room {
                    return Err(TOO_LARGE);
                }
                reserve_within(out, len, limit);
                out.extend_from_slice(data);
                continue;
            }
            // Decode straight into `out`, given the block's maximum or what is left of the
            // limit, whichever is less.
            let capacity = block_max.min(room);
            reserve_within(out, capacity, limit);
            out.resize(at + capacity, 0);
            let (before, dst) = out.split_at_mut(at);
            let decoded = if linked {
                // A linked block may refer to the frame's last 64 KiB of output.
                let dict_start = at.saturating_sub(WINDOW).max(frame_start);
                let dict = before.get(dict_start..).unwrap_or_default();
                decompress_into_with_dict(data, dst, dict)
            } else {
                decompress_into(data, dst)
            };
            match decoded {
                Ok(n) => out.truncate(at + n),
                Err(DecompressError::OutputTooSmall { .. }) if capacity < block_max => {
                    return Err(TOO_LARGE)
                }
                Err(_) => return Err(CodecError::Corrupt("invalid lz4 block")),
            }
        }
        let content = out.get(frame_start..).unwrap_or_default();
        if content_size.is_some_and(|size| size != content.len() as u64) {
            return Err(CodecError::Corrupt("lz4 frame content size mismatch"));
        }
        if flg & FLG_CONTENT_CHECKSUM != 0 {
            let sum = take_u32(&mut rest, "truncated lz4 content checksum")?;
            if sum != XxHash32::oneshot(0, content) {
                return Err(CodecError::Corrupt("lz4 content checksum mismatch"));
            }
        }
        Ok(rest)
    }
}

/// zstd frames, as zstd-jni (Kafka's `ZstdCompression`) and librdkafka write them.
#[cfg(feature = "zstd")]
mod zstd {
    use zstd::zstd_safe::{
        get_error_name, get_frame_content_size, zstd_sys::ZSTD_EndDirective, CCtx, CParameter,
        DCtx, DParameter, InBuffer, OutBuffer,
    };

    use super::{grow_towards, CodecError, TOO_LARGE};

    /// Kafka's default zstd level (`ZSTD.defaultLevel()`, zstd's `ZSTD_CLEVEL_DEFAULT`).
    const LEVEL: i32 = 3;

    /// The smallest window (as a power of two) the reader accepts whatever `max_len` is: 8 MiB,
    /// the largest window zstd uses at any level up to 19 (`ZSTD_defaultCParameters`), so every
    /// stream Kafka or librdkafka writes below the "ultra" levels 20-22 reads. Larger windows are
    /// accepted up to the power of two at or above `max_len`: a stream never needs a window longer
    /// than its content, so a larger one read from a hostile header does not make the decoder
    /// reserve more than `max(max_len, 8 MiB)`.
    pub(super) const MIN_WINDOW_LOG: u32 = 23;
    /// zstd's own largest window on 64-bit targets (`ZSTD_WINDOWLOG_MAX_64`).
    const MAX_WINDOW_LOG: u32 = 31;

    pub(super) fn window_log_max(max_len: usize) -> u32 {
        let needed = usize::BITS - max_len.saturating_sub(1).leading_zeros();
        needed.clamp(MIN_WINDOW_LOG, MAX_WINDOW_LOG)
    }

    fn corrupt(code: usize) -> CodecError {
        CodecError::Corrupt(get_error_name(code))
    }

    /// One frame of the whole input at Kafka's default level. The input is given at once, so
    /// the frame header records the content size (zstd-jni's streams do not; readers take both).
    pub(super) fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let mut cctx = CCtx::try_create().ok_or(CodecError::Corrupt("zstd: out of memory"))?;
        cctx.set_parameter(CParameter::CompressionLevel(LEVEL))
            .map_err(corrupt)?;
        out.reserve(zstd::zstd_safe::compress_bound(input.len()));
        let mut src = InBuffer::around(input);
        loop {
            let pos = out.len();
            let mut dst = OutBuffer::around_pos(out, pos);
            let remaining = cctx
                .compress_stream2(&mut dst, &mut src, ZSTD_EndDirective::ZSTD_e_end)
                .map_err(corrupt)?;
            if remaining == 0 {
                return Ok(());
            }
            out.reserve(remaining);
        }
    }

    /// One or more frames (and skippable frames), read with a bounded window.
    pub(super) fn decompress(
        input: &[u8],
        max_len: usize,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        // A first frame that says it is too long fails at once.
        if let Ok(Some(size)) = get_frame_content_size(input) {
            if size > max_len as u64 {
                return Err(TOO_LARGE);
            }
        }
        let mut dctx = DCtx::try_create().ok_or(CodecError::Corrupt("zstd: out of memory"))?;
        dctx.set_parameter(DParameter::WindowLogMax(window_log_max(max_len)))
            .map_err(corrupt)?;
        let mut src = InBuffer::around(input);
        loop {
            let (in_before, out_before) = (src.pos(), out.len());
            let hint = if out.len() >= limit {
                // Full: anything more is too much.
                let mut probe = [0u8; 1];
                let mut dst = OutBuffer::around(&mut probe[..]);
                let hint = dctx
                    .decompress_stream(&mut dst, &mut src)
                    .map_err(corrupt)?;
                if dst.pos() > 0 {
                    return Err(TOO_LARGE);
                }
                hint
            } else {
                grow_towards(out, limit);
                let pos = out.len();
                let mut dst = OutBuffer::around_pos(out, pos);
                dctx.decompress_stream(&mut dst, &mut src)
                    .map_err(corrupt)?
            };
            if out.len() > limit {
                return Err(TOO_LARGE);
            }
            // 0: a frame ended and everything it decoded was handed out.
            if hint == 0 && src.pos() == input.len() {
                return Ok(());
            }
            if src.pos() == in_before && out.len() == out_before {
                return Err(CodecError::Corrupt("truncated zstd frame"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::indexing_slicing,
        reason = "tests index fixtures they built themselves"
    )]

    use super::*;

    /// Every codec this build has, `None` included.
    fn available() -> Vec<Compression> {
        [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ]
        .into_iter()
        .filter(|c| c.is_available())
        .collect()
    }

    /// Available codecs other than `None`.
    fn codecs() -> Vec<Compression> {
        available()
            .into_iter()
            .filter(|&c| c != Compression::None)
            .collect()
    }

    /// Deterministic JSON-like text: compressible, but not trivially.
    fn json_like(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 200);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut i = 0u64;
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let line = format!(
                "{{\"id\":{i},\"user\":\"user-{}\",\"event\":\"{}\",\"amount\":{}.{:02},\"ts\":{}}}\n",
                x % 5000,
                ["click", "view", "purchase", "refund"][(x >> 20) as usize % 4],
                (x >> 8) % 10_000,
                x % 100,
                1_700_000_000_000 + i * 37
            );
            out.extend_from_slice(line.as_bytes());
            i += 1;
        }
        out.truncate(len);
        out
    }

    /// Pseudo-random bytes: incompressible.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn compressed(codec: Compression, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        compress(codec, input, &mut out).expect("compress");
        out
    }

    fn decompressed(
        codec: Compression,
        input: &[u8],
        max_len: usize,
    ) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        decompress(codec, input, max_len, &mut out).map(|()| out)
    }

    #[test]
    fn names_attributes_and_parsing() {
        let all = [
            (Compression::None, "none", 0),
            (Compression::Gzip, "gzip", 1),
            (Compression::Snappy, "snappy", 2),
            (Compression::Lz4, "lz4", 3),
            (Compression::Zstd, "zstd", 4),
        ];
        for (codec, name, bits) in all {
            assert_eq!(codec.name(), name);
            assert_eq!(codec.to_string(), name);
            assert_eq!(name.parse::<Compression>(), Ok(codec));
            assert_eq!(codec.attribute_bits(), bits);
            assert_eq!(Compression::from_attributes(bits), Ok(codec));
            // Only bits 0-2 count: timestamp type, transactional, control and the rest do not.
            assert_eq!(Compression::from_attributes(bits | 0xFFF8), Ok(codec));
        }
        for bits in 5..8 {
            assert_eq!(
                Compression::from_attributes(bits),
                Err("unknown compression codec")
            );
        }
        for bad in ["", "producer", "GZIP", "lz4 ", "zstandard", "uncompressed"] {
            assert!(bad.parse::<Compression>().is_err(), "{bad:?}");
        }
        assert_eq!(Compression::default(), Compression::None);
        assert!(Compression::None.is_available());
        assert_eq!(Compression::Gzip.is_available(), cfg!(feature = "gzip"));
        assert_eq!(Compression::Snappy.is_available(), cfg!(feature = "snappy"));
        assert_eq!(Compression::Lz4.is_available(), cfg!(feature = "lz4"));
        assert_eq!(Compression::Zstd.is_available(), cfg!(feature = "zstd"));
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            CodecError::Unavailable(Compression::Snappy).to_string(),
            "compression codec snappy is not compiled in (enable topiclog's Cargo feature \"snappy\")"
        );
        assert_eq!(
            CodecError::TooLarge { max: 10 }.to_string(),
            "compressed data decompresses to more than 10 bytes"
        );
        assert_eq!(
            CodecError::Corrupt("bad").to_string(),
            "corrupt compressed data: bad"
        );
    }

    #[test]
    fn round_trips() {
        let inputs: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("one byte", vec![42]),
            ("small", b"hello, kafka! hello, kafka! hello".to_vec()),
            ("json 1 MiB", json_like(1 << 20)),
            ("noise 1 MiB", noise(1 << 20, 7)),
            ("zeros 1 MiB + 1", vec![0; (1 << 20) + 1]),
            // Around the codecs' block sizes.
            ("json 32 KiB", json_like(32 << 10)),
            ("json 64 KiB + 1", json_like((64 << 10) + 1)),
            ("noise 64 KiB", noise(64 << 10, 3)),
        ];
        for codec in available() {
            for (name, input) in &inputs {
                let stream = compressed(codec, input);
                // Appends: what `out` held before stays.
                let mut out = b"prefix".to_vec();
                decompress(codec, &stream, input.len(), &mut out)
                    .unwrap_or_else(|e| panic!("{codec} {name}: {e}"));
                assert!(out.starts_with(b"prefix"));
                assert!(out[6..] == input[..], "{codec} {name}: round trip differs");
                if !input.is_empty() {
                    assert_eq!(
                        decompressed(codec, &stream, input.len() - 1),
                        Err(CodecError::TooLarge {
                            max: input.len() - 1
                        }),
                        "{codec} {name}: one byte under the limit"
                    );
                }
                // compress appends too.
                let mut appended = b"xy".to_vec();
                compress(codec, input, &mut appended).expect("compress");
                assert_eq!(
                    &appended[2..],
                    &stream[..],
                    "{codec} {name}: compress appends"
                );
            }
        }
    }

    #[test]
    fn compressed_is_smaller() {
        let input = json_like(1 << 20);
        for codec in codecs() {
            let stream = compressed(codec, &input);
            assert!(
                stream.len() < input.len() / 2,
                "{codec}: {} bytes",
                stream.len()
            );
        }
    }

    #[test]
    fn empty_and_garbage_input_is_corrupt() {
        for codec in codecs() {
            assert!(
                matches!(
                    decompressed(codec, b"", 1 << 20),
                    Err(CodecError::Corrupt(_))
                ),
                "{codec}: empty input"
            );
            for seed in 0..20 {
                let garbage = noise(1000, seed);
                assert!(
                    matches!(
                        decompressed(codec, &garbage, 1 << 20),
                        Err(CodecError::Corrupt(_))
                    ),
                    "{codec}: garbage {seed}"
                );
            }
        }
        assert_eq!(decompressed(Compression::None, b"", 0), Ok(Vec::new()));
        assert_eq!(
            decompressed(Compression::None, b"abc", 2),
            Err(CodecError::TooLarge { max: 2 })
        );
    }

    /// Every prefix of a valid stream: an error, or (where the format allows a stream to end
    /// there) a prefix of the content. Never a panic, never more than the content.
    #[test]
    fn truncations() {
        let input = json_like(100 << 10);
        for codec in codecs() {
            let stream = compressed(codec, &input);
            let cuts: Vec<usize> = (0..stream.len().min(300))
                .chain((300..stream.len()).step_by(97))
                .chain(stream.len().saturating_sub(40)..stream.len())
                .collect();
            for cut in cuts {
                let mut out = b"keep".to_vec();
                match decompress(codec, &stream[..cut], input.len(), &mut out) {
                    Err(CodecError::Corrupt(_)) => assert_eq!(out, b"keep"),
                    Ok(()) => {
                        // A snappy-java stream cut between two chunks is a valid shorter
                        // stream: snappy-java's framing has no end marker.
                        assert_eq!(codec, Compression::Snappy, "{codec} cut at {cut} decoded");
                        assert!(input.starts_with(&out[4..]), "{codec} cut at {cut}");
                        assert!(out.len() - 4 < input.len());
                    }
                    Err(e) => panic!("{codec} cut at {cut}: {e}"),
                }
            }
        }
    }

    /// Flips one bit at a time all over `stream`: every result is an error that leaves `out` as
    /// it was, or content of at most `input.len()` bytes, which must be `input` itself when
    /// `checked` (the stream carries a checksum over its content). Returns how many flips failed.
    fn sweep_bit_flips(codec: Compression, stream: &[u8], input: &[u8], checked: bool) -> usize {
        let positions: Vec<usize> = (0..stream.len().min(64))
            .chain((64..stream.len()).step_by(29))
            .chain(stream.len().saturating_sub(16)..stream.len())
            .collect();
        let mut errors = 0;
        for &at in &positions {
            for bit in [0, 5] {
                let mut damaged = stream.to_vec();
                damaged[at] ^= 1 << bit;
                let mut out = b"keep".to_vec();
                match decompress(codec, &damaged, input.len(), &mut out) {
                    Ok(()) => {
                        assert!(out.len() - 4 <= input.len());
                        assert!(
                            !checked || out[4..] == input[..],
                            "{codec}: damage at {at} bit {bit} decoded"
                        );
                    }
                    Err(CodecError::Corrupt(_)) | Err(CodecError::TooLarge { .. }) => {
                        assert_eq!(out, b"keep");
                        errors += 1;
                    }
                    Err(e) => panic!("{codec}: {e}"),
                }
            }
        }
        errors
    }

    /// Single-bit flips all over each codec's stream. Only gzip checksums its content as Kafka
    /// writes it; snappy, Kafka's LZ4 frames and zstd frames can decode damage to other bytes
    /// (the batch CRC catches that), but never to more than the limit.
    #[test]
    fn bit_flips() {
        // Two LZ4 blocks, three snappy-java chunks, several deflate blocks.
        let input = json_like(70 << 10);
        for codec in codecs() {
            let stream = compressed(codec, &input);
            let checked = codec == Compression::Gzip;
            let errors = sweep_bit_flips(codec, &stream, &input, checked);
            assert!(errors > 0, "{codec}: no flip detected");
        }
    }

    /// The same with the content checksums Kafka leaves out: every flip is caught.
    #[cfg(any(feature = "lz4", feature = "zstd"))]
    #[test]
    fn bit_flips_with_checksums() {
        let input = json_like(70 << 10);
        #[cfg(feature = "lz4")]
        {
            use lz4_flex::frame::{FrameEncoder, FrameInfo};
            let info = FrameInfo::new()
                .block_checksums(true)
                .content_checksum(true);
            let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
            std::io::Write::write_all(&mut encoder, &input).unwrap();
            let frame = encoder.finish().unwrap();
            sweep_bit_flips(Compression::Lz4, &frame, &input, true);
        }
        #[cfg(feature = "zstd")]
        {
            let mut encoder = ::zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
            encoder.include_checksum(true).unwrap();
            std::io::Write::write_all(&mut encoder, &input).unwrap();
            let frame = encoder.finish().unwrap();
            sweep_bit_flips(Compression::Zstd, &frame, &input, true);
        }
    }

    /// A small stream of a lot of zeros against a small limit: `TooLarge`, fast, without
    /// decoding (or allocating) the whole content.
    #[test]
    fn bombs_stop_at_the_limit() {
        let zeros = vec![0u8; 100 << 20];
        for codec in codecs() {
            let stream = compressed(codec, &zeros);
            assert!(stream.len() < 5 << 20, "{codec}: {} bytes", stream.len());
            let started = std::time::Instant::now();
            let mut out = Vec::new();
            assert_eq!(
                decompress(codec, &stream, 1 << 20, &mut out),
                Err(CodecError::TooLarge { max: 1 << 20 }),
                "{codec}"
            );
            assert!(out.is_empty());
            assert!(
                out.capacity() <= (1 << 20) + (4 << 20),
                "{codec}: kept {} bytes of capacity",
                out.capacity()
            );
            assert!(
                started.elapsed() < std::time::Duration::from_secs(2),
                "{codec}: took {:?}",
                started.elapsed()
            );
        }
    }

    /// The output grows only as far as the limit, even when the stream would go on.
    #[test]
    fn output_capacity_stays_within_the_limit() {
        let input = json_like(4 << 20);
        for codec in codecs() {
            let stream = compressed(codec, &input);
            for max_len in [0, 1, 1000, 100 << 10, (1 << 20) + 3] {
                let mut out = Vec::new();
                assert_eq!(
                    decompress(codec, &stream, max_len, &mut out),
                    Err(CodecError::TooLarge { max: max_len }),
                    "{codec} {max_len}"
                );
                assert!(
                    out.capacity() <= max_len.max(64 << 10),
                    "{codec} {max_len}: capacity {}",
                    out.capacity()
                );
            }
        }
    }

    /// kafka-protocol (an independent Rust implementation of Kafka's protocol, with its own
    /// snappy-java framing and LZ4 frames from the C liblz4) reads what `compress` writes, and
    /// `decompress` reads what it writes.
    #[cfg(any(
        feature = "gzip",
        feature = "snappy",
        feature = "lz4",
        feature = "zstd"
    ))]
    #[test]
    fn kafka_protocol_reads_ours_and_we_read_its() {
        use bytes::{Bytes, BytesMut};
        use kafka_protocol::compression::{Compressor, Decompressor};

        fn theirs_compress<C: Compressor<BytesMut, BufMut = BytesMut>>(input: &[u8]) -> Vec<u8> {
            let mut out = BytesMut::new();
            C::compress(&mut out, |buf: &mut BytesMut| {
                buf.extend_from_slice(input);
                Ok(())
            })
            .expect("kafka-protocol compresses");
            out.to_vec()
        }
        fn theirs_decompress<D: Decompressor<Bytes, Buf = Bytes>>(stream: &[u8]) -> Vec<u8> {
            D::decompress(&mut Bytes::copy_from_slice(stream), |buf: &mut Bytes| {
                Ok(buf.to_vec())
            })
            .expect("kafka-protocol decompresses")
        }
        type Pair = (Compression, fn(&[u8]) -> Vec<u8>, fn(&[u8]) -> Vec<u8>);
        use kafka_protocol::compression as kp;
        let pairs: Vec<Pair> = vec![
            #[cfg(feature = "gzip")]
            (
                Compression::Gzip,
                theirs_compress::<kp::Gzip>,
                theirs_decompress::<kp::Gzip>,
            ),
            #[cfg(feature = "snappy")]
            (
                Compression::Snappy,
                theirs_compress::<kp::Snappy>,
                theirs_decompress::<kp::Snappy>,
            ),
            #[cfg(feature = "lz4")]
            (
                Compression::Lz4,
                theirs_compress::<kp::Lz4>,
                theirs_decompress::<kp::Lz4>,
            ),
            #[cfg(feature = "zstd")]
            (
                Compression::Zstd,
                theirs_compress::<kp::Zstd>,
                theirs_decompress::<kp::Zstd>,
            ),
        ];
        let inputs = [
            b"x".to_vec(),
            b"hello, kafka! hello, kafka!".to_vec(),
            json_like(300 << 10),
            noise(100 << 10, 9),
        ];
        for (codec, their_compress, their_decompress) in pairs {
            for input in &inputs {
                let ours = compressed(codec, input);
                assert!(
                    their_decompress(&ours) == *input,
                    "{codec}: theirs reads ours"
                );
                let theirs = their_compress(input);
                assert_eq!(
                    decompressed(codec, &theirs, input.len()).as_deref(),
                    Ok(&input[..]),
                    "{codec}: ours reads theirs"
                );
            }
            if codec == Compression::Snappy {
                // The same snappy-java framing (header, 32 KiB chunks) around the same raw
                // snappy encoder (both use snap): byte for byte the same stream.
                let input = json_like(100 << 10);
                assert_eq!(compressed(codec, &input), their_compress(&input));
            }
            if codec == Compression::Lz4 {
                // liblz4 through the lz4 crate: FLG 0x74 (block and content checksums on, which
                // Kafka does not write), BD 0x40: read above all the same.
                let theirs = their_compress(b"data");
                assert_eq!(theirs[..6], [0x04, 0x22, 0x4D, 0x18, 0x74, 0x40]);
            }
        }
    }

    #[cfg(not(all(
        feature = "gzip",
        feature = "snappy",
        feature = "lz4",
        feature = "zstd"
    )))]
    #[test]
    fn codecs_without_their_feature_are_unavailable() {
        let off: Vec<Compression> = [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ]
        .into_iter()
        .filter(|c| !c.is_available())
        .collect();
        assert!(!off.is_empty());
        for codec in off {
            let mut out = b"keep".to_vec();
            assert_eq!(
                compress(codec, b"data", &mut out),
                Err(CodecError::Unavailable(codec))
            );
            assert_eq!(
                decompress(codec, b"data", 100, &mut out),
                Err(CodecError::Unavailable(codec))
            );
            assert_eq!(out, b"keep");
        }
    }

    #[cfg(feature = "gzip")]
    mod gzip {
        use super::*;

        #[test]
        fn header_is_a_plain_gzip_member() {
            let stream = compressed(Compression::Gzip, b"abc");
            // ID1 ID2, CM deflate, FLG none, MTIME 0, XFL 0 (level 6), OS unknown (255).
            assert_eq!(stream[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
            // CRC-32 and ISIZE.
            let n = stream.len();
            assert_eq!(stream[n - 8..n - 4], crc32fast::hash(b"abc").to_le_bytes());
            assert_eq!(stream[n - 4..], 3u32.to_le_bytes());
        }

        #[test]
        fn concatenated_members_are_read() {
            let mut stream = compressed(Compression::Gzip, b"first ");
            stream.extend(compressed(Compression::Gzip, b""));
            stream.extend(compressed(Compression::Gzip, b"second"));
            assert_eq!(
                decompressed(Compression::Gzip, &stream, 100),
                Ok(b"first second".to_vec())
            );
            assert_eq!(
                decompressed(Compression::Gzip, &stream, 11),
                Err(CodecError::TooLarge { max: 11 })
            );
        }

        #[test]
        fn trailing_garbage_is_corrupt() {
            for tail in [&b"x"[..], b"\x1f", b"\x1f\x8b", b"garbage after the member"] {
                let mut stream = compressed(Compression::Gzip, b"data");
                stream.extend_from_slice(tail);
                assert!(
                    matches!(
                        decompressed(Compression::Gzip, &stream, 100),
                        Err(CodecError::Corrupt(_))
                    ),
                    "{tail:?}"
                );
            }
        }

        #[test]
        fn header_fields_are_skipped() {
            // FNAME, FCOMMENT, FEXTRA and FHCRC, as zlib or gzip(1) may write them.
            let mut encoder = flate2::GzBuilder::new()
                .filename("batch")
                .comment("a comment")
                .extra(vec![1, 2, 3, 4])
                .mtime(1_700_000_000)
                .write(Vec::new(), flate2::Compression::best());
            std::io::Write::write_all(&mut encoder, b"payload").expect("write");
            let stream = encoder.finish().expect("finish");
            assert_eq!(
                decompressed(Compression::Gzip, &stream, 100),
                Ok(b"payload".to_vec())
            );
        }
    }

    #[cfg(feature = "snappy")]
    mod snappy {
        use super::super::snappy::{BLOCK_SIZE, HEADER};
        use super::*;

        /// snappy-java's `SnappyCodec`: `MAGIC_HEADER = {-126, 'S','N','A','P','P','Y', 0}`,
        /// `DEFAULT_VERSION = 1`, `MINIMUM_COMPATIBLE_VERSION = 1`, written by `DataOutputStream`
        /// (big-endian); `SnappyOutputStream.DEFAULT_BLOCK_SIZE = 32 * 1024`, which Kafka's
        /// `SnappyCompression.wrapForOutput` (`new SnappyOutputStream(bufferStream)`) keeps.
        #[test]
        fn framing_is_snappy_java_s() {
            assert_eq!(
                HEADER,
                [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1]
            );
            assert_eq!(BLOCK_SIZE, 32 * 1024);
            // Nothing written: snappy-java still writes its header on close.
            assert_eq!(compressed(Compression::Snappy, b""), HEADER);
            assert_eq!(
                decompressed(Compression::Snappy, &HEADER, 0),
                Ok(Vec::new())
            );

            // 100 KiB: chunks of 32 + 32 + 32 + 4 KiB, each a big-endian length and a raw
            // snappy block of that chunk.
            let input = json_like(100 << 10);
            let stream = compressed(Compression::Snappy, &input);
            assert_eq!(stream[..16], HEADER);
            let mut rest = &stream[16..];
            let mut chunks = Vec::new();
            while !rest.is_empty() {
                let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                let block = &rest[4..4 + len];
                chunks.push(snap::raw::Decoder::new().decompress_vec(block).unwrap());
                rest = &rest[4 + len..];
            }
            let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
            assert_eq!(sizes, [32 << 10, 32 << 10, 32 << 10, 4 << 10]);
            assert_eq!(chunks.concat(), input);
        }

        /// What kafka-protocol's tests record as Kafka's own bytes for one record's batch body.
        #[test]
        fn reads_kafka_bytes() {
            let stream = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x0f\x0d\x30\x18\x00\x00\x00\x01\x0csdfdsf\x00";
            let content = decompressed(Compression::Snappy, stream, 100).expect("decode");
            assert_eq!(content, b"\x18\x00\x00\x00\x01\x0csdfdsf\x00");
            assert_eq!(compressed(Compression::Snappy, &content), stream.to_vec());
        }

        /// librdkafka writes raw snappy (`rd_kafka_snappy_compress_iov`, no framing);
        /// snappy-java's `SnappyInputStream.readHeader` and librdkafka's reader both fall back
        /// to raw snappy when the magic is missing.
        #[test]
        fn raw_snappy_is_read() {
            for input in [
                b"".to_vec(),
                b"x".to_vec(),
                json_like(100 << 10),
                noise(5000, 1),
            ] {
                let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
                assert_eq!(
                    decompressed(Compression::Snappy, &raw, input.len()),
                    Ok(input.clone())
                );
                if !input.is_empty() {
                    assert_eq!(
                        decompressed(Compression::Snappy, &raw, input.len() - 1),
                        Err(CodecError::TooLarge {
                            max: input.len() - 1
                        })
                    );
                }
            }
        }

        /// A block that claims a huge length fails before anything is allocated for it.
        #[test]
        fn claimed_lengths_are_bounded() {
            // Raw: varint 0xFFFFFFFF (4 GiB - 1) then a literal: more than 7 bytes can hold.
            let raw = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, b'a'];
            assert_eq!(
                decompressed(Compression::Snappy, &raw, 1 << 20),
                Err(CodecError::Corrupt(
                    "snappy block length impossible for its size"
                ))
            );
            // 2000 bytes claimed by 100: possible, but over the limit.
            let mut plausible = vec![0xd0, 0x0f];
            plausible.resize(100, 0);
            assert_eq!(
                decompressed(Compression::Snappy, &plausible, 1000),
                Err(CodecError::TooLarge { max: 1000 })
            );
            // Framed: a chunk length past the input, and a negative one.
            let mut framed = HEADER.to_vec();
            framed.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
            framed.push(0);
            assert!(matches!(
                decompressed(Compression::Snappy, &framed, 1 << 20),
                Err(CodecError::Corrupt(_))
            ));
            let mut negative = HEADER.to_vec();
            negative.extend_from_slice(&0xffff_fff0u32.to_be_bytes());
            assert!(matches!(
                decompressed(Compression::Snappy, &negative, 1 << 20),
                Err(CodecError::Corrupt(_))
            ));
        }

        /// Two snappy-java streams back to back: `SnappyInputStream` reads on through the
        /// second header (version at least 1).
        #[test]
        fn concatenated_streams_are_read() {
            let mut stream = compressed(Compression::Snappy, b"first ");
            stream.extend(compressed(Compression::Snappy, b"second"));
            assert_eq!(
                decompressed(Compression::Snappy, &stream, 100),
                Ok(b"first second".to_vec())
            );
            let mut old = compressed(Compression::Snappy, b"first ");
            let mut second = compressed(Compression::Snappy, b"second");
            second[11] = 0; // version 0
            old.extend(second);
            assert!(matches!(
                decompressed(Compression::Snappy, &old, 100),
                Err(CodecError::Corrupt(_))
            ));
        }
    }

    #[cfg(feature = "lz4")]
    mod lz4 {
        use super::super::lz4::{header_checksum, KAFKA_BD, KAFKA_BLOCK_SIZE, KAFKA_FLG, MAGIC};
        use super::*;

        /// Kafka's `Lz4BlockOutputStream` (`KafkaLZ4BlockOutputStream` before Kafka 3.8):
        /// `MAGIC = 0x184D2204` (written little-endian), `FLG(blockChecksum = false)` =
        /// version 1 and block independence = `0x60`, `BD(BLOCKSIZE_64KB = 4)` = `0x40`, then
        /// `HC = (XXHash32(FLG, BD; seed 0) >> 8) & 0xFF` (the correct checksum: only magic 0
        /// used the broken one that also hashed the magic). Blocks of at most 64 KiB; a block
        /// that does not shrink is stored with `LZ4_FRAME_INCOMPRESSIBLE_MASK` (`0x80000000`);
        /// `writeEndMark` writes a zero `u32` and no content checksum.
        #[test]
        fn frame_is_kafka_s() {
            assert_eq!(MAGIC, 0x184D_2204);
            assert_eq!(KAFKA_FLG, 0x60);
            assert_eq!(KAFKA_BD, 0x40);
            assert_eq!(KAFKA_BLOCK_SIZE, 1 << (2 * 4 + 8));
            assert_eq!(header_checksum(&[0x60, 0x40]), 0x82);
            const HEADER: [u8; 7] = [0x04, 0x22, 0x4D, 0x18, 0x60, 0x40, 0x82];

            // Nothing written: header and end mark (Kafka's `close` without a block).
            let empty = compressed(Compression::Lz4, b"");
            assert_eq!(empty, [&HEADER[..], &[0, 0, 0, 0]].concat());

            // 100 KiB of text: a 64 KiB block and a 36 KiB block, both compressed.
            let input = json_like(100 << 10);
            let stream = compressed(Compression::Lz4, &input);
            assert_eq!(stream[..7], HEADER);
            let mut rest = &stream[7..];
            let mut sizes = Vec::new();
            let mut content = Vec::new();
            loop {
                let size = u32::from_le_bytes(rest[..4].try_into().unwrap());
                rest = &rest[4..];
                if size == 0 {
                    break;
                }
                assert_eq!(size & 0x8000_0000, 0, "compressible block stored");
                let block = &rest[..size as usize];
                let mut buf = vec![0; 64 << 10];
                let n = lz4_flex::block::decompress_into(block, &mut buf).unwrap();
                sizes.push(n);
                content.extend_from_slice(&buf[..n]);
                rest = &rest[size as usize..];
            }
            assert!(rest.is_empty(), "nothing after the end mark");
            assert_eq!(sizes, [64 << 10, 36 << 10]);
            assert_eq!(content, input);

            // Incompressible input: stored blocks, flagged.
            let noise = noise(1000, 5);
            let stream = compressed(Compression::Lz4, &noise);
            assert_eq!(stream[7..11], (1000u32 | 0x8000_0000).to_le_bytes());
            assert_eq!(stream[11..1011], noise[..]);
            assert_eq!(stream[1011..], [0, 0, 0, 0]);
        }

        /// Frames from an independent encoder with every option Kafka does not use: linked
        /// blocks, block and content checksums, content size, larger blocks; frames one after
        /// another and a skippable frame.
        #[test]
        fn reads_any_frame() {
            use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
            let input = json_like(700 << 10);
            for mode in [BlockMode::Independent, BlockMode::Linked] {
                for size in [
                    BlockSize::Max64KB,
                    BlockSize::Max256KB,
                    BlockSize::Max1MB,
                    BlockSize::Max4MB,
                ] {
                    for checksums in [false, true] {
                        for content_size in [None, Some(input.len() as u64)] {
                            let mut info = FrameInfo::new()
                                .block_mode(mode)
                                .block_size(size)
                                .block_checksums(checksums)
                                .content_checksum(checksums);
                            info.content_size = content_size;
                            let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
                            std::io::Write::write_all(&mut encoder, &input).unwrap();
                            let frame = encoder.finish().unwrap();
                            let what = format!("{mode:?} {size:?} {checksums} {content_size:?}");
                            assert_eq!(
                                decompressed(Compression::Lz4, &frame, input.len()).as_deref(),
                                Ok(&input[..]),
                                "{what}"
                            );
                            assert_eq!(
                                decompressed(Compression::Lz4, &frame, input.len() - 1),
                                Err(CodecError::TooLarge {
                                    max: input.len() - 1
                                }),
                                "{what}"
                            );
                            if checksums {
                                // The content checksum catches a changed literal.
                                let mut damaged = frame.clone();
                                let n = damaged.len();
                                damaged[n - 5] ^= 1;
                                assert!(
                                    decompressed(Compression::Lz4, &damaged, input.len()).is_err(),
                                    "{what}"
                                );
                            }
                        }
                    }
                }
            }
            // Two frames and a skippable frame between them.
            let mut stream = compressed(Compression::Lz4, b"first ");
            stream.extend_from_slice(&0x184D_2A53u32.to_le_bytes());
            stream.extend_from_slice(&3u32.to_le_bytes());
            stream.extend_from_slice(b"abc");
            stream.extend(compressed(Compression::Lz4, b"second"));
            assert_eq!(
                decompressed(Compression::Lz4, &stream, 100),
                Ok(b"first second".to_vec())
            );
        }

        #[test]
        fn header_fields_are_checked() {
            let good = compressed(Compression::Lz4, b"data data data");
            let with = |at: usize, byte: u8| {
                let mut s = good.clone();
                s[at] = byte;
                // Keep the header checksum right, so only the field is wrong.
                s[6] = header_checksum(&s[4..6]);
                decompressed(Compression::Lz4, &s, 100)
            };
            assert!(matches!(with(4, 0x20), Err(CodecError::Corrupt(_)))); // version 0
            assert!(matches!(with(4, 0x62), Err(CodecError::Corrupt(_)))); // reserved bit
            assert!(matches!(with(5, 0x30), Err(CodecError::Corrupt(_)))); // block size 3
            assert!(matches!(with(5, 0x41), Err(CodecError::Corrupt(_)))); // reserved bits
            let mut bad_hc = good.clone();
            bad_hc[6] ^= 1;
            assert_eq!(
                decompressed(Compression::Lz4, &bad_hc, 100),
                Err(CodecError::Corrupt(
                    "lz4 frame descriptor checksum mismatch"
                ))
            );
            // Magic 0's broken checksum (over magic, FLG and BD) is not the v2 one.
            let mut broken = good.clone();
            broken[6] = header_checksum(&good[..6]);
            assert_ne!(broken[6], good[6]);
            assert!(decompressed(Compression::Lz4, &broken, 100).is_err());
            // A dictionary id: nothing to decode it with.
            let mut dict = good[..4].to_vec();
            dict.extend_from_slice(&[0x61, 0x40, 0, 0, 0, 0]);
            dict.push(header_checksum(&dict[4..10]));
            dict.extend_from_slice(&[0, 0, 0, 0]);
            assert_eq!(
                decompressed(Compression::Lz4, &dict, 100),
                Err(CodecError::Corrupt("lz4 frame needs a dictionary"))
            );
        }

        /// A header that declares a huge content size, or a block larger than its frame allows,
        /// fails before anything is allocated for it.
        #[test]
        fn claimed_sizes_are_bounded() {
            let mut frame = MAGIC.to_le_bytes().to_vec();
            frame.extend_from_slice(&[0x68, 0x70]); // content size, 4 MiB blocks
            frame.extend_from_slice(&u64::MAX.to_le_bytes());
            frame.push(header_checksum(&frame[4..]));
            frame.extend_from_slice(&[0, 0, 0, 0]);
            assert_eq!(
                decompressed(Compression::Lz4, &frame, 1 << 20),
                Err(CodecError::TooLarge { max: 1 << 20 })
            );
            let mut big_block = compressed(Compression::Lz4, b"")[..7].to_vec();
            big_block.extend_from_slice(&((64u32 << 10) + 1).to_le_bytes());
            big_block.extend_from_slice(&vec![0; (64 << 10) + 1]);
            big_block.extend_from_slice(&[0, 0, 0, 0]);
            assert_eq!(
                decompressed(Compression::Lz4, &big_block, 1 << 20),
                Err(CodecError::Corrupt(
                    "lz4 block larger than the frame allows"
                ))
            );
        }
    }

    #[cfg(feature = "zstd")]
    mod zstd {
        use super::super::zstd::{window_log_max, MIN_WINDOW_LOG};
        use super::*;

        #[test]
        fn window_limit() {
            assert_eq!(MIN_WINDOW_LOG, 23);
            assert_eq!(window_log_max(0), 23);
            assert_eq!(window_log_max(1 << 20), 23);
            assert_eq!(window_log_max(8 << 20), 23);
            assert_eq!(window_log_max((8 << 20) + 1), 24);
            assert_eq!(window_log_max(256 << 20), 28);
            assert_eq!(window_log_max(usize::MAX), 31);
        }

        /// zstd-jni writes a stream without the content size, in several blocks (Kafka's 16 KiB
        /// `BufferedOutputStream` in front of it); the reader takes it, and stops at the limit.
        #[test]
        fn reads_streamed_frames() {
            let input = json_like(3 << 20);
            let mut encoder = ::zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
            for chunk in input.chunks(16 << 10) {
                std::io::Write::write_all(&mut encoder, chunk).unwrap();
            }
            let stream = encoder.finish().unwrap();
            assert!(matches!(
                ::zstd::zstd_safe::get_frame_content_size(&stream),
                Ok(None)
            ));
            assert_eq!(
                decompressed(Compression::Zstd, &stream, input.len()).as_deref(),
                Ok(&input[..])
            );
            assert_eq!(
                decompressed(Compression::Zstd, &stream, input.len() - 1),
                Err(CodecError::TooLarge {
                    max: input.len() - 1
                })
            );
            // Two frames back to back, with a checksum on the second.
            let mut two = compressed(Compression::Zstd, b"first ");
            let mut encoder = ::zstd::stream::Encoder::new(Vec::new(), 19).unwrap();
            encoder.include_checksum(true).unwrap();
            std::io::Write::write_all(&mut encoder, b"second").unwrap();
            two.extend(encoder.finish().unwrap());
            assert_eq!(
                decompressed(Compression::Zstd, &two, 100),
                Ok(b"first second".to_vec())
            );
        }

        /// A frame whose window is larger than both `max_len` and the 8 MiB floor is refused
        /// before the decoder reserves the window.
        #[test]
        fn large_windows_are_bounded() {
            let input = json_like(100 << 10);
            let mut cctx = ::zstd::zstd_safe::CCtx::create();
            cctx.set_parameter(::zstd::zstd_safe::CParameter::WindowLog(27))
                .unwrap();
            let mut encoder = ::zstd::stream::Encoder::with_context(Vec::new(), &mut cctx);
            std::io::Write::write_all(&mut encoder, &input).unwrap();
            let stream = encoder.finish().unwrap();
            assert!(matches!(
                decompressed(Compression::Zstd, &stream, 1 << 20),
                Err(CodecError::Corrupt(_))
            ));
            assert_eq!(
                decompressed(Compression::Zstd, &stream, 128 << 20).as_deref(),
                Ok(&input[..])
            );
        }
    }
}
