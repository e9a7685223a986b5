//! A partition directory's segment files read from disk and decoded twice: by kafka-protocol's
//! `RecordBatchDecoder` (CRC-32C checked, every codec) and by the small parser in [`spec`], with
//! the two cross-checked batch by batch.

use std::path::{Path, PathBuf};

use kafka_protocol::records::{
    Compression, Record as KafkaRecord, RecordBatchDecoder, RecordSet, TimestampType,
};
use topiclog::Bytes;

use crate::common::RecordView;
use crate::spec::{self, RawBatch};

/// One segment's three files, as bytes.
#[derive(Debug)]
pub struct SegmentFiles {
    pub base_offset: u64,
    pub log_path: PathBuf,
    pub log: Vec<u8>,
    pub index: Option<Vec<u8>>,
    pub time_index: Option<Vec<u8>>,
}

/// Kafka's segment file name: the base offset in 20 zero-padded digits (`LogFileUtils`).
fn parse_name(name: &str) -> Option<(u64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, ext))
}

/// Every `<20 digits>.log` in `dir` with its index files, by base offset.
pub fn segment_files(dir: &Path) -> Vec<SegmentFiles> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some((base_offset, "log")) = parse_name(&name) else {
            continue;
        };
        let log_path = dir.join(&name);
        let stem = &name[..20];
        let read = |ext: &str| std::fs::read(dir.join(format!("{stem}.{ext}"))).ok();
        out.push(SegmentFiles {
            base_offset,
            log: std::fs::read(&log_path).unwrap(),
            index: read("index"),
            time_index: read("timeindex"),
            log_path,
        });
    }
    out.sort_by_key(|s| s.base_offset);
    assert!(!out.is_empty(), "no segment files in {}", dir.display());
    out
}

/// Decode exactly one batch (all of `bytes`) with kafka-protocol.
pub fn kafka_decode_batch(bytes: &[u8]) -> Result<RecordSet, String> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| format!("{e:#}"))?;
    if !buf.is_empty() {
        return Err(format!("{} bytes left after one batch", buf.len()));
    }
    Ok(set)
}

/// Decode a whole `.log` file with kafka-protocol.
pub fn kafka_decode_log(bytes: &[u8]) -> Result<Vec<RecordSet>, String> {
    let mut buf = Bytes::copy_from_slice(bytes);
    RecordBatchDecoder::decode_all(&mut buf).map_err(|e| format!("{e:#}"))
}

/// One batch as both decoders saw it.
#[derive(Debug)]
pub struct DecodedBatch {
    pub position: usize,
    pub raw: RawBatch,
    pub kafka: RecordSet,
}

/// One segment's batches.
#[derive(Debug)]
pub struct DecodedSegment {
    pub files: SegmentFiles,
    pub batches: Vec<DecodedBatch>,
}

/// The code of a kafka-protocol compression in the attributes' low 3 bits.
pub fn codec_id(c: Compression) -> i16 {
    match c {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// Read and decode every segment of `dir`, asserting what Kafka's format requires of each batch:
/// the batches cover each `.log` exactly, magic 2 at byte 16, the CRC-32C over attributes..end
/// matches (computed here and checked by kafka-protocol), the header's record count, codec and
/// flags agree with what kafka-protocol decoded, the records fill the batch exactly with
/// attributes 0, offset deltas strictly increase up to the last offset delta, the max timestamp
/// is the largest record timestamp (create time), and batches' offsets increase.
pub fn decode_dir(dir: &Path) -> Vec<DecodedSegment> {
    let mut out = Vec::new();
    let mut next_offset: Option<i64> = None;
    for files in segment_files(dir) {
        let what = files.log_path.display().to_string();
        let split = spec::split_batches(&files.log).unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut batches = Vec::new();
        for (position, raw) in split {
            let at = format!("{what} @{position} (base offset {})", raw.base_offset);
            assert_eq!(raw.magic, 2, "{at}: magic (byte 16) must be 2");
            assert_eq!(
                raw.crc,
                raw.computed_crc(),
                "{at}: CRC field vs CRC-32C of bytes [21, end)"
            );
            let kafka = kafka_decode_batch(&raw.bytes)
                .unwrap_or_else(|e| panic!("{at}: kafka-protocol rejects the batch: {e}"));
            assert_eq!(kafka.version, 2, "{at}: kafka-protocol's version");
            assert_eq!(
                codec_id(kafka.compression),
                raw.compression(),
                "{at}: codec"
            );
            assert_eq!(
                kafka.records.len(),
                raw.records_count as usize,
                "{at}: record count field vs records decoded"
            );
            assert!(raw.last_offset_delta >= 0, "{at}: last offset delta < 0");
            assert!(
                raw.base_offset >= files.base_offset as i64,
                "{at}: below segment base"
            );
            if let Some(next) = next_offset {
                assert!(
                    raw.base_offset >= next,
                    "{at}: overlaps the previous batch (which ends before {next})"
                );
            }
            next_offset = Some(raw.last_offset() + 1);
            assert_eq!(
                raw.attributes & !0x7f,
                0,
                "{at}: attribute bits above 6 are unused in Kafka"
            );
            let mut prev_delta = -1i64;
            for r in &kafka.records {
                let delta = r.offset - raw.base_offset;
                assert!(
                    delta > prev_delta,
                    "{at}: offset deltas must strictly increase"
                );
                prev_delta = delta;
                assert!(
                    delta <= i64::from(raw.last_offset_delta),
                    "{at}: offset {} past the batch's last offset {}",
                    r.offset,
                    raw.last_offset()
                );
                assert_eq!(r.partition_leader_epoch, raw.partition_leader_epoch, "{at}");
                assert_eq!(r.producer_id, raw.producer_id, "{at}");
                assert_eq!(r.producer_epoch, raw.producer_epoch, "{at}");
                assert_eq!(r.transactional, raw.is_transactional(), "{at}");
                assert_eq!(r.control, raw.is_control(), "{at}");
                assert_eq!(
                    r.timestamp_type == TimestampType::LogAppend,
                    raw.is_log_append_time(),
                    "{at}: timestamp type"
                );
            }
            if !raw.is_log_append_time() && !raw.has_delete_horizon() {
                if let Some(max) = kafka.records.iter().map(|r| r.timestamp).max() {
                    assert_eq!(
                        raw.max_timestamp, max,
                        "{at}: max timestamp vs the largest record timestamp"
                    );
                }
            }
            if raw.compression() == 0 {
                let records = raw
                    .records()
                    .unwrap_or_else(|e| panic!("{at}: records do not parse exactly: {e}"));
                for (mine, theirs) in records.iter().zip(&kafka.records) {
                    assert_eq!(mine.attributes, 0, "{at}: record attributes are unused (0)");
                    assert_eq!(
                        raw.base_offset + i64::from(mine.offset_delta),
                        theirs.offset,
                        "{at}"
                    );
                    assert_eq!(
                        raw.base_timestamp + mine.timestamp_delta,
                        theirs.timestamp,
                        "{at}"
                    );
                    assert_eq!(mine.key.as_deref(), theirs.key.as_deref(), "{at}");
                    assert_eq!(mine.value.as_deref(), theirs.value.as_deref(), "{at}");
                    assert_eq!(
                        mine.headers.len(),
                        theirs.headers.len(),
                        "{at}: header count (duplicate header keys?)"
                    );
                }
            }
            batches.push(DecodedBatch {
                position,
                raw,
                kafka,
            });
        }
        out.push(DecodedSegment { files, batches });
    }
    out
}

/// A record as a Kafka consumer sees it: the timestamp of a log-append-time batch is the batch's
/// max timestamp (`DefaultRecordBatch`: `timestampType() == LOG_APPEND_TIME ? maxTimestamp()`).
pub fn kafka_view(batch: &DecodedBatch, r: &KafkaRecord) -> RecordView {
    RecordView {
        offset: r.offset as u64,
        timestamp: if batch.raw.is_log_append_time() {
            batch.raw.max_timestamp
        } else {
            r.timestamp
        },
        key: r.key.as_ref().map(|k| k.to_vec()),
        value: r.value.as_ref().map(|v| v.to_vec()),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_ref().map(|v| v.to_vec())))
            .collect(),
    }
}

/// The data records of every batch (control batches left out), as a consumer sees them.
pub fn kafka_data_records(segments: &[DecodedSegment]) -> Vec<RecordView> {
    segments
        .iter()
        .flat_map(|s| &s.batches)
        .filter(|b| !b.raw.is_control())
        .flat_map(|b| b.kafka.records.iter().map(move |r| kafka_view(b, r)))
        .collect()
}

/// All batches of all segments, in order.
pub fn all_batches(segments: &[DecodedSegment]) -> impl Iterator<Item = &DecodedBatch> {
    segments.iter().flat_map(|s| &s.batches)
}
