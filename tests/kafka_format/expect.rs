//! What was appended through topiclog's API, kept to compare with what Kafka's decoders find on
//! disk: every record as it should read back, and every batch's header facts.

use std::borrow::Borrow;
use std::path::Path;
use std::sync::Arc;

use topiclog::segment::RecordBatch;
use topiclog::{
    AppendInfo, Durability, Env, LogConfig, ManualClock, Partition, ProducerBatch, Record,
    TimestampType,
};

use crate::common::{record_views, RecordView};
use crate::disk::{self, DecodedSegment};

/// A fixed "now" for the tests' clocks (2023-11-14T22:13:20Z).
pub const NOW_MS: i64 = 1_700_000_000_000;

/// A partition on the real file system whose clock reads `clock`.
pub fn open_partition(dir: &Path, config: LogConfig, clock: &Arc<ManualClock>) -> Partition {
    let env = Env {
        clock: clock.clone(),
        ..Env::default()
    };
    Partition::open_with_env(dir, config, env).unwrap()
}

/// Header facts of one appended batch.
#[derive(Clone, Debug)]
pub struct ExpectedBatch {
    pub base_offset: u64,
    pub last_offset: u64,
    pub record_count: usize,
    /// Kafka's `MemoryRecordsBuilder` writes the first record's timestamp as the base timestamp.
    pub first_timestamp: i64,
    /// The largest record timestamp (create time), or the append time (log-append time).
    pub max_timestamp: i64,
    pub log_append_time: bool,
    pub producer: Option<ProducerBatch>,
}

/// Records and batches appended so far.
#[derive(Debug, Default)]
pub struct Appended {
    pub records: Vec<RecordView>,
    pub batches: Vec<ExpectedBatch>,
    /// The codec every batch is written with (attributes bits 0-2; 0 = none).
    pub codec: i16,
}

impl Appended {
    /// Append `records` as one batch.
    pub fn append<R: Borrow<Record>>(&mut self, log: &Partition, records: &[R]) -> AppendInfo {
        let info = log.append_batch(records).unwrap();
        self.note(log, records, &info, None);
        info
    }

    /// Append `records` as one batch of an idempotent producer.
    pub fn append_idempotent<R: Borrow<Record>>(
        &mut self,
        log: &Partition,
        records: &[R],
        producer: ProducerBatch,
    ) -> AppendInfo {
        let info = log
            .append_idempotent(records, producer, Durability::None)
            .unwrap();
        self.note(log, records, &info, Some(producer));
        info
    }

    fn note<R: Borrow<Record>>(
        &mut self,
        log: &Partition,
        records: &[R],
        info: &AppendInfo,
        producer: Option<ProducerBatch>,
    ) {
        if info.duplicate {
            return;
        }
        assert_eq!(
            info.last_offset - info.base_offset + 1,
            records.len() as u64,
            "offsets are dense within a batch"
        );
        let log_append_time = log.config().timestamp_type == TimestampType::LogAppendTime;
        let timestamp = |r: &Record| {
            if log_append_time {
                info.append_time
            } else {
                r.timestamp().unwrap_or(info.append_time)
            }
        };
        for (i, r) in records.iter().enumerate() {
            let r = r.borrow();
            self.records.push(RecordView {
                offset: info.base_offset + i as u64,
                timestamp: timestamp(r),
                key: r.key().map(|k| k.to_vec()),
                value: r.value().map(|v| v.to_vec()),
                headers: r
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_ref().map(|v| v.to_vec())))
                    .collect(),
            });
        }
        let stamps: Vec<i64> = records.iter().map(|r| timestamp(r.borrow())).collect();
        self.batches.push(ExpectedBatch {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            record_count: records.len(),
            first_timestamp: stamps[0],
            max_timestamp: *stamps.iter().max().unwrap(),
            log_append_time,
            producer,
        });
    }
}

/// Check every batch on disk against the batch appended at its base offset (the log must not have
/// been compacted): offsets, record count, timestamps and their type, producer fields (-1 when
/// none), partition leader epoch 0, the expected codec, transactional/control/delete-horizon clear.
pub fn assert_batch_headers(segments: &[DecodedSegment], appended: &Appended) {
    let on_disk: Vec<_> = disk::all_batches(segments).collect();
    assert_eq!(
        on_disk.len(),
        appended.batches.len(),
        "one batch on disk per append"
    );
    for (b, want) in on_disk.iter().zip(&appended.batches) {
        let raw = &b.raw;
        let at = format!("batch at offset {}", want.base_offset);
        assert_eq!(
            raw.base_offset, want.base_offset as i64,
            "{at}: base offset"
        );
        assert_eq!(
            raw.last_offset(),
            want.last_offset as i64,
            "{at}: last offset"
        );
        assert_eq!(
            raw.records_count as usize, want.record_count,
            "{at}: record count"
        );
        assert_eq!(
            raw.partition_leader_epoch, 0,
            "{at}: partition leader epoch"
        );
        assert_eq!(raw.compression(), appended.codec, "{at}: codec");
        assert!(!raw.is_transactional(), "{at}: transactional flag");
        assert!(!raw.is_control(), "{at}: control flag");
        assert!(!raw.has_delete_horizon(), "{at}: delete horizon flag");
        assert_eq!(
            raw.is_log_append_time(),
            want.log_append_time,
            "{at}: timestamp type (attributes bit 3)"
        );
        assert_eq!(raw.max_timestamp, want.max_timestamp, "{at}: max timestamp");
        if !want.log_append_time {
            assert_eq!(
                raw.base_timestamp, want.first_timestamp,
                "{at}: base timestamp (Kafka's builder writes the first record's timestamp)"
            );
        }
        let (pid, epoch, seq) = match want.producer {
            Some(p) => (p.producer_id, p.epoch, p.base_sequence),
            None => (-1, -1, -1),
        };
        assert_eq!(raw.producer_id, pid, "{at}: producer id");
        assert_eq!(raw.producer_epoch, epoch, "{at}: producer epoch");
        assert_eq!(raw.base_sequence, seq, "{at}: base sequence");
        if let Some(p) = want.producer {
            for (i, r) in b.kafka.records.iter().enumerate() {
                assert_eq!(
                    r.sequence,
                    p.base_sequence.wrapping_add(i as i32),
                    "{at}: record {i}'s sequence"
                );
            }
        }
    }
}

/// Every batch topiclog's read API returns, from the start to the end.
pub fn topiclog_batches(log: &Partition) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut next = log.start_offset();
    while next < log.end_offset() {
        let batches = log.read(next, 1 << 20).unwrap();
        assert!(
            !batches.is_empty(),
            "read at {next} returned nothing below the end"
        );
        next = batches.next_offset();
        out.extend(batches);
    }
    out
}

/// The batches topiclog's read API returns are the bytes on disk (as a Kafka fetch returns them),
/// and the header topiclog decodes from them says what Kafka's layout says. Every batch with
/// records from the start offset on is returned (an empty batch compaction left may be skipped,
/// as a Kafka consumer skips it).
pub fn assert_reads_return_disk_batches(log: &Partition, segments: &[DecodedSegment]) {
    let start = log.start_offset() as i64;
    let on_disk: std::collections::BTreeMap<i64, &disk::DecodedBatch> = disk::all_batches(segments)
        .filter(|b| b.raw.last_offset() >= start)
        .map(|b| (b.raw.base_offset, b))
        .collect();
    let read = topiclog_batches(log);
    let read_bases: Vec<i64> = read.iter().map(|b| b.base_offset() as i64).collect();
    for (base, d) in &on_disk {
        if d.raw.records_count > 0 {
            assert!(
                read_bases.contains(base),
                "the batch at {base} on disk was not returned by reads ({read_bases:?})"
            );
        }
    }
    for t in &read {
        let d = on_disk
            .get(&(t.base_offset() as i64))
            .unwrap_or_else(|| panic!("read returned a batch at {} not on disk", t.base_offset()));
        let at = format!("batch at {}", d.raw.base_offset);
        assert_eq!(
            &t.as_bytes()[..],
            &d.raw.bytes[..],
            "{at}: bytes read vs on disk"
        );
        let h = t.header();
        let raw = &d.raw;
        assert_eq!(h.base_offset as i64, raw.base_offset, "{at}");
        assert_eq!(h.length as i32, raw.batch_length, "{at}");
        assert_eq!(h.partition_leader_epoch, raw.partition_leader_epoch, "{at}");
        assert_eq!(h.magic as i8, raw.magic, "{at}");
        assert_eq!(h.crc, raw.crc, "{at}");
        assert_eq!(h.attributes as i16, raw.attributes, "{at}");
        assert_eq!(h.last_offset_delta as i32, raw.last_offset_delta, "{at}");
        assert_eq!(h.base_timestamp, raw.base_timestamp, "{at}");
        assert_eq!(h.max_timestamp, raw.max_timestamp, "{at}");
        assert_eq!(h.producer_id, raw.producer_id, "{at}");
        assert_eq!(h.producer_epoch, raw.producer_epoch, "{at}");
        assert_eq!(h.base_sequence, raw.base_sequence, "{at}");
        assert_eq!(h.record_count as i32, raw.records_count, "{at}");
        assert_eq!(t.base_offset() as i64, raw.base_offset, "{at}");
        assert_eq!(t.last_offset() as i64, raw.last_offset(), "{at}");
        assert_eq!(t.max_timestamp(), raw.max_timestamp, "{at}");
        assert_eq!(t.record_count() as i32, raw.records_count, "{at}");
    }
}

/// Decode `dir` from disk and compare what Kafka's decoders see with what was appended and with
/// what topiclog's read API returns (`log` still open), records and batches.
pub fn assert_disk_matches(log: &Partition, appended: &Appended) -> Vec<DecodedSegment> {
    let read_back = record_views(log, log.start_offset());
    assert_eq!(
        read_back, appended.records,
        "topiclog's reads vs what was appended"
    );
    let segments = disk::decode_dir(log.dir());
    assert_reads_return_disk_batches(log, &segments);
    let decoded = disk::kafka_data_records(&segments);
    assert_eq!(
        decoded, appended.records,
        "kafka-protocol's decoding of the .log files vs what was appended"
    );
    assert_batch_headers(&segments, appended);
    segments
}
