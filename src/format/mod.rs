//! Byte layouts: record batches, index entries, file names, and topiclog's own metadata files
//! (`meta`: one checksummed envelope, one bounds-checked reader, one codec trait).
//!
//! This module is the only code that parses binary bytes read from disk (the one text file,
//! `topic.conf`, is parsed line by line in `topic::config`, checksummed with [`meta::crc32`]). Everything it decodes is checked
//! against the bytes that remain before it is used, so damaged input yields an error, never a panic,
//! an unbounded allocation or a loop. The layout is documented in `docs/FORMAT.md`; offsets below are
//! derived from the previous field so the two cannot drift apart silently.

#![deny(clippy::indexing_slicing)]

mod batch;
mod builder;
mod compression;
mod index;
#[doc(hidden)]
pub mod meta;
mod names;
mod record;
mod varint;

pub use batch::{crc32c, set_base_offset, BatchHeader, RecordBatch, RecordRefs, Records};
pub use builder::BatchBuilder;
pub use compression::Compression;
// Crate-internal API, `pub` (not `pub(crate)`) only so that `internals::format` re-exports it to
// the fuzz crate: `format` itself is private.
#[doc(hidden)]
pub use compression::{compress, decompress, CodecError};
pub use index::{OffsetIndexEntry, TimeIndexEntry, OFFSET_INDEX_ENTRY_LEN, TIME_INDEX_ENTRY_LEN};
pub use names::{parse_segment_file_name, segment_file_name, SegmentFileKind};
pub use record::{Header, HeaderIter, Record, RecordRef, StoredRecord};

pub(crate) use batch::{
    codec_error, codec_unavailable, crc_matches, describe_foreign_format, encode_batch,
    encode_retained, encoded_batch_len, missing_codec, patch_base_offset, peek_frame, peek_span,
    span_crc_matches, validate_batch, BatchMeta, BatchSpan, Frame, SPAN_LEN,
};

/// The record batch format: Kafka's RecordBatch v2 ("magic" 2), the only one topiclog reads and
/// writes. Kafka's message sets v0 and v1 (magic 0 and 1) are refused with an error naming them.
pub const MAGIC: u8 = 2;

// ---- Batch header layout: Kafka's `DefaultRecordBatch`, big-endian ---------------------------------
/// `i64` offset of the first record in the batch. Not covered by the CRC (Kafka assigns it after
/// the producer checksummed the batch); see `docs/FORMAT.md` for how topiclog checks it.
pub const BASE_OFFSET_OFFSET: usize = 0;
/// `i32` number of bytes that follow this field (the whole batch is `LENGTH_OFFSET + 4 + length`).
pub const LENGTH_OFFSET: usize = BASE_OFFSET_OFFSET + 8;
/// `i32` partition leader epoch (topiclog writes 0). Not covered by the CRC.
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = LENGTH_OFFSET + 4;
/// `i8` format ("magic"), [`MAGIC`].
pub const MAGIC_OFFSET: usize = PARTITION_LEADER_EPOCH_OFFSET + 4;
/// `u32` CRC-32C (Castagnoli) of every byte after this field (attributes to the end).
pub const CRC_OFFSET: usize = MAGIC_OFFSET + 1;
/// `i16` attributes: bits 0-2 compression codec, bit 3 timestamp type (1 = log-append time),
/// bit 4 transactional, bit 5 control batch, bit 6 delete horizon in the base timestamp.
pub const ATTRIBUTES_OFFSET: usize = CRC_OFFSET + 4;
/// `i32` offset of the last record relative to the base offset.
pub const LAST_OFFSET_DELTA_OFFSET: usize = ATTRIBUTES_OFFSET + 2;
/// `i64` base timestamp (ms since the Unix epoch): the first record's, or the delete horizon when
/// attribute bit 6 is set. Record timestamps are deltas from it.
pub const BASE_TIMESTAMP_OFFSET: usize = LAST_OFFSET_DELTA_OFFSET + 4;
/// `i64` largest record timestamp in the batch (the log-append time for such batches).
pub const MAX_TIMESTAMP_OFFSET: usize = BASE_TIMESTAMP_OFFSET + 8;
/// `i64` idempotent producer id, -1 when unused.
pub const PRODUCER_ID_OFFSET: usize = MAX_TIMESTAMP_OFFSET + 8;
/// `i16` producer epoch, -1 when unused.
pub const PRODUCER_EPOCH_OFFSET: usize = PRODUCER_ID_OFFSET + 8;
/// `i32` sequence number of the first record, -1 when unused.
pub const BASE_SEQUENCE_OFFSET: usize = PRODUCER_EPOCH_OFFSET + 2;
/// `i32` number of records in the batch.
pub const RECORD_COUNT_OFFSET: usize = BASE_SEQUENCE_OFFSET + 4;
/// Records start here (compressed as one stream when the codec bits say so).
pub const RECORDS_OFFSET: usize = RECORD_COUNT_OFFSET + 4;
/// Size of the batch header (61, Kafka's `RECORD_BATCH_OVERHEAD`).
pub const BATCH_HEADER_LEN: usize = RECORDS_OFFSET;
/// Bytes before the CRC-covered region (base offset, length, leader epoch, magic, CRC).
pub const BATCH_PREFIX_LEN: usize = CRC_OFFSET + 4;
/// Bytes of the header that the length field counts.
pub const MIN_BATCH_LENGTH_FIELD: u32 = (BATCH_HEADER_LEN - PARTITION_LEADER_EPOCH_OFFSET) as u32;

/// Hard upper bound on one batch, whatever the configuration: a length field above this is damage.
pub const MAX_BATCH_BYTES_LIMIT: usize = 256 << 20;

/// Hard upper bound on the records of a compressed batch once decompressed: the most a batch
/// could hold uncompressed. A stream that would inflate past it is damage (or a bomb), found
/// without allocating more than this.
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = MAX_BATCH_BYTES_LIMIT;

/// Largest offset relative to a segment's base offset, and largest byte position in a segment:
/// Kafka's index entries hold both as `int32`.
pub const MAX_SEGMENT_RELATIVE: u64 = i32::MAX as u64;

/// Attribute bits 0-2: the compression codec.
pub const ATTR_COMPRESSION_MASK: u16 = 0x07;
/// Attribute bit: timestamps were assigned by the log at append time.
pub const ATTR_LOG_APPEND_TIME: u16 = 1 << 3;
/// Attribute bit: the batch belongs to a transaction.
pub const ATTR_TRANSACTIONAL: u16 = 1 << 4;
/// Attribute bit: a control batch (transaction markers), never returned to readers as data.
pub const ATTR_CONTROL: u16 = 1 << 5;
/// Attribute bit (KIP-534): the base timestamp holds the delete horizon of the batch's tombstones.
pub const ATTR_DELETE_HORIZON: u16 = 1 << 6;
