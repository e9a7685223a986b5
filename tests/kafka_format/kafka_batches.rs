//! Batches built by kafka-protocol's `RecordBatchEncoder` (the independent encoder), with the few
//! header facts it cannot express (log-append time, a last offset delta past the last record, an
//! empty batch) patched in with [`spec`] as Kafka's broker does in place.

use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record as KafkaRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use topiclog::Bytes;

use crate::common::RecordView;
use crate::spec;

/// One record of a batch to encode.
#[derive(Clone, Debug)]
pub struct Rec {
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// A record; `None` key or value is null.
pub fn rec(timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Rec {
    Rec {
        timestamp,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers: Vec::new(),
    }
}

impl Rec {
    /// With a header (keys must be unique within a record: kafka-protocol keeps them in a map).
    pub fn header(mut self, key: &str, value: Option<&[u8]>) -> Rec {
        self.headers
            .push((key.to_owned(), value.map(<[u8]>::to_vec)));
        self
    }
}

/// One batch to encode.
#[derive(Clone, Debug)]
pub struct BatchSpec {
    pub base_offset: i64,
    pub records: Vec<Rec>,
    /// Offset delta of each record (default 0, 1, 2, ...).
    pub offset_deltas: Option<Vec<i64>>,
    /// Overrides the last offset delta (a compacted batch keeps its original last offset).
    pub last_offset_delta: Option<i32>,
    /// Producer id, epoch and base sequence; `None` for -1, -1, -1.
    pub producer: Option<(i64, i16, i32)>,
    pub transactional: bool,
    pub control: bool,
    pub compression: Compression,
    /// Log-append time: attributes bit 3 set and this max timestamp.
    pub log_append_time: Option<i64>,
    pub partition_leader_epoch: i32,
}

impl BatchSpec {
    /// A plain create-time batch without producer, at `base_offset`.
    pub fn new(base_offset: i64, records: Vec<Rec>) -> BatchSpec {
        BatchSpec {
            base_offset,
            records,
            offset_deltas: None,
            last_offset_delta: None,
            producer: None,
            transactional: false,
            control: false,
            compression: Compression::None,
            log_append_time: None,
            partition_leader_epoch: 0,
        }
    }

    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> BatchSpec {
        self.producer = Some((id, epoch, base_sequence));
        self
    }

    pub fn transactional(mut self) -> BatchSpec {
        self.transactional = true;
        self
    }

    pub fn compression(mut self, c: Compression) -> BatchSpec {
        self.compression = c;
        self
    }

    pub fn log_append_time(mut self, t: i64) -> BatchSpec {
        self.log_append_time = Some(t);
        self
    }

    pub fn leader_epoch(mut self, e: i32) -> BatchSpec {
        self.partition_leader_epoch = e;
        self
    }

    pub fn offset_deltas(mut self, deltas: &[i64], last_offset_delta: i32) -> BatchSpec {
        self.offset_deltas = Some(deltas.to_vec());
        self.last_offset_delta = Some(last_offset_delta);
        self
    }

    fn offset_delta(&self, i: usize) -> i64 {
        self.offset_deltas.as_ref().map_or(i as i64, |d| d[i])
    }

    /// kafka-protocol's records for this batch.
    pub fn kafka_records(&self) -> Vec<KafkaRecord> {
        let (pid, epoch, base_seq) = self.producer.unwrap_or((-1, -1, -1));
        self.records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let delta = self.offset_delta(i);
                let headers: IndexMap<StrBytes, Option<Bytes>> = r
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            StrBytes::from_string(k.clone()),
                            v.as_ref().map(|v| Bytes::from(v.clone())),
                        )
                    })
                    .collect();
                assert_eq!(headers.len(), r.headers.len(), "header keys must be unique");
                KafkaRecord {
                    transactional: self.transactional,
                    control: self.control,
                    delete_horizon: false,
                    partition_leader_epoch: self.partition_leader_epoch,
                    producer_id: pid,
                    producer_epoch: epoch,
                    timestamp_type: TimestampType::Creation,
                    offset: self.base_offset + delta,
                    // The encoder groups records whose offset - sequence agree into one batch.
                    sequence: base_seq.wrapping_add(delta as i32),
                    timestamp: r.timestamp,
                    key: r.key.clone().map(Bytes::from),
                    value: r.value.clone().map(Bytes::from),
                    headers,
                }
            })
            .collect()
    }

    /// The batch's bytes, encoded by kafka-protocol (one batch), then patched as the spec says.
    pub fn encode(&self) -> Vec<u8> {
        let records = self.kafka_records();
        let mut buf = Vec::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: self.compression,
            },
        )
        .unwrap();
        let batches = spec::split_batches(&buf).unwrap();
        assert_eq!(
            batches.len(),
            1,
            "kafka-protocol split the records into batches"
        );
        if let Some(d) = self.last_offset_delta {
            let at = spec::LAST_OFFSET_DELTA_OFFSET;
            buf[at..at + 4].copy_from_slice(&d.to_be_bytes());
            spec::fix_crc(&mut buf);
        }
        if let Some(t) = self.log_append_time {
            spec::set_log_append_time(&mut buf, t);
        }
        buf
    }

    /// The records as a Kafka consumer reads them (none for a control batch).
    pub fn expected(&self) -> Vec<RecordView> {
        if self.control {
            return Vec::new();
        }
        self.records
            .iter()
            .enumerate()
            .map(|(i, r)| RecordView {
                offset: (self.base_offset + self.offset_delta(i)) as u64,
                timestamp: self.log_append_time.unwrap_or(r.timestamp),
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
            })
            .collect()
    }
}

/// A transaction marker (control batch) at `offset` for producer `pid`/`epoch`: one record whose
/// key is the control record version (0) and type (0 ABORT, 1 COMMIT), and whose value is the
/// end-transaction marker: version (0) and coordinator epoch (`EndTransactionMarker.java`).
pub fn control_batch(offset: i64, pid: i64, epoch: i16, commit: bool, timestamp: i64) -> BatchSpec {
    let key = [0u8, 0, 0, u8::from(commit)];
    let value = [0u8, 0, 0, 0, 0, 5];
    let mut spec = BatchSpec::new(offset, vec![rec(timestamp, Some(&key), Some(&value))]);
    // Kafka writes control batches with the producer's id and epoch and no sequence (-1).
    spec.producer = Some((pid, epoch, -1));
    spec.transactional = true;
    spec.control = true;
    spec
}

/// An empty batch (record count 0) covering `base..=last`, as Kafka's cleaner leaves to keep a
/// producer's last sequence (`DefaultRecordBatch.writeEmptyHeader`: base timestamp -1).
pub fn empty_batch(base: i64, last: i64, max_timestamp: i64) -> Vec<u8> {
    let mut b = Vec::with_capacity(spec::RECORDS_OFFSET);
    b.extend_from_slice(&base.to_be_bytes());
    b.extend_from_slice(&((spec::RECORDS_OFFSET - spec::LOG_OVERHEAD) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // CRC, below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&((last - base) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes()); // base timestamp
    b.extend_from_slice(&max_timestamp.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&0i32.to_be_bytes()); // record count
    spec::fix_crc(&mut b);
    b
}
