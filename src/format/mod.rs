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
mod compression;
mod index;
#[doc(hidden)]
pub mod meta;
mod names;
mod record;
mod varint;

pub use batch::{set_base_offset, BatchHeader, RecordBatch, Records};
pub use compression::Compression;
// Crate-internal API, `pub` (not `pub(crate)`) only so that `internals::format` re-exports it to
// the fuzz crate: `format` itself is private.
#[doc(hidden)]
pub use compression::{compress, decompress, CodecError};
pub use index::{OffsetIndexEntry, TimeIndexEntry, OFFSET_INDEX_ENTRY_LEN, TIME_INDEX_ENTRY_LEN};
pub use names::{parse_segment_file_name, segment_file_name, SegmentFileKind};
pub use record::{Header, HeaderIter, Record, StoredRecord};

pub(crate) use batch::{
    crc_matches, encode_batch, encode_retained, encoded_batch_len, patch_base_offset, peek_frame,
    BatchMeta, Frame,
};

/// Current (and only) batch format version.
pub const BATCH_VERSION: u8 = 1;

// ---- Batch header layout (little-endian) ----------------------------------------------------------
/// `u64` offset of the first record in the batch. Covered by the CRC through an XOR of its own
/// CRC (see `CRC_OFFSET`), so it can be assigned after the batch was encoded and checksummed.
pub const BASE_OFFSET_OFFSET: usize = 0;
/// `u32` number of bytes that follow this field (the whole batch is `LENGTH_OFFSET + 4 + length`).
pub const LENGTH_OFFSET: usize = BASE_OFFSET_OFFSET + 8;
/// `u32` CRC-32 (IEEE, `crc32fast`) of every byte after this field, XOR the CRC-32 of the base
/// offset's 8 bytes.
pub const CRC_OFFSET: usize = LENGTH_OFFSET + 4;
/// `u8` format version ([`BATCH_VERSION`]).
pub const VERSION_OFFSET: usize = CRC_OFFSET + 4;
/// `u16` attributes: bits 0-2 compression codec (0 = none), bit 3 timestamp type
/// (0 = create time, 1 = log-append time), bit 4 transactional, bit 5 control batch.
pub const ATTRIBUTES_OFFSET: usize = VERSION_OFFSET + 1;
/// `u32` offset of the last record relative to the base offset.
pub const LAST_OFFSET_DELTA_OFFSET: usize = ATTRIBUTES_OFFSET + 2;
/// `i64` timestamp (ms since the Unix epoch) of the first record.
pub const FIRST_TIMESTAMP_OFFSET: usize = LAST_OFFSET_DELTA_OFFSET + 4;
/// `i64` largest record timestamp in the batch.
pub const MAX_TIMESTAMP_OFFSET: usize = FIRST_TIMESTAMP_OFFSET + 8;
/// `i64` idempotent producer id, -1 when unused.
pub const PRODUCER_ID_OFFSET: usize = MAX_TIMESTAMP_OFFSET + 8;
/// `i16` producer epoch, -1 when unused.
pub const PRODUCER_EPOCH_OFFSET: usize = PRODUCER_ID_OFFSET + 8;
/// `i32` sequence number of the first record, -1 when unused.
pub const BASE_SEQUENCE_OFFSET: usize = PRODUCER_EPOCH_OFFSET + 2;
/// `u32` number of records in the batch.
pub const RECORD_COUNT_OFFSET: usize = BASE_SEQUENCE_OFFSET + 4;
/// Records start here.
pub const RECORDS_OFFSET: usize = RECORD_COUNT_OFFSET + 4;
/// Size of the batch header.
pub const BATCH_HEADER_LEN: usize = RECORDS_OFFSET;
/// Bytes before the CRC-covered region (base offset, length, CRC).
pub const BATCH_PREFIX_LEN: usize = CRC_OFFSET + 4;
/// Bytes of the header that the length field counts.
pub const MIN_BATCH_LENGTH_FIELD: u32 = (BATCH_HEADER_LEN - CRC_OFFSET) as u32;

/// Hard upper bound on one batch, whatever the configuration: a length field above this is damage.
pub const MAX_BATCH_BYTES_LIMIT: usize = 256 << 20;

/// Attribute bit: timestamps were assigned by the log at append time.
pub const ATTR_LOG_APPEND_TIME: u16 = 1 << 3;
