//! topiclog's segment files against Kafka's on-disk format, checked with an independent
//! implementation: kafka-protocol's `RecordBatchEncoder`/`RecordBatchDecoder` (a dev-dependency)
//! and a small parser written from Kafka's documentation (`spec`), never topiclog's `format`
//! module.
//!
//! - `write_side`: logs written through topiclog's API, decoded from disk, every field compared
//!   with what was appended and with topiclog's own reads.
//! - `indexes`: `.index` / `.timeindex` entries against Kafka's layout and `LogSegment` rules.
//! - `read_side`: batches built by kafka-protocol written as a Kafka partition directory, opened
//!   and read back by topiclog (transaction markers, offset gaps, producer state).
//! - `vectors`: published vectors (CRC-32C, Kafka's varints, a real broker's batches).
//! - `export_import`: `Store::export_kafka` writes a Kafka log directory (segments, indexes,
//!   checkpoint files) the decoders accept; `Store::import_kafka` reads kafka-protocol's batches.
//! - `codecs`: every compression codec both ways (each behind topiclog's feature of its name),
//!   with the payload checked against what Kafka's Java readers accept.

#[path = "../common/mod.rs"]
mod common;

mod codecs;
mod disk;
mod expect;
mod export_import;
mod indexes;
mod kafka_batches;
mod read_side;
mod spec;
mod vectors;
mod write_side;
