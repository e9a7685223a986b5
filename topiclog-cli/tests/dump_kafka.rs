//! `topiclog dump` on segment files a Kafka broker wrote: its batches (leader epochs, producer
//! fields, headers) and its preallocated index files.

mod common;

use common::*;

// Batches written by a real Kafka 0.11 broker (kafka-python's test data; the same vectors as
// topiclog's tests/kafka_format/vectors.rs): offsets 0-3, leader epochs 1, 2, 2.
const KAFKA_0_11_LOG: &[&str] = &[
    "00000000000000000000003b00000001020318a2700000000000000000015dff7b063c0000015dff7b063c\
     ffffffffffffffffffffffffffff0000000112000000010631323300",
    "0000000000000001000000400000000202c85cbd230000000000010000015dff7cdd6c0000015dff7cde14\
     ffffffffffffffffffffffffffff000000020c0000000100000e00d00202010000",
    "00000000000000030000003b00000002022e0b85b70000000000000000015dff7ce79d0000015dff7ce79d\
     ffffffffffffffffffffffffffff0000000112000000010631323300",
];

/// sarama's "uncompressed record" (`record_test.go`), as a broker stores it at offset 0: key
/// 01020304, value 050607, header 08090a = 0b0c, producer id, epoch and sequence 0.
const SARAMA: &str = "0000000000000000000000460000000002547961fd000000000000000001588dcd5938\
                      0000000000000000000000000000000000000000000000000001\
                      28000a00080102030406050607020608090a040b0c";

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_kafka_brokers_log_dumps_as_kafka_wrote_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = segment_file(dir.path(), "log");
    std::fs::write(
        &log,
        KAFKA_0_11_LOG
            .iter()
            .flat_map(|b| hex(b))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let log = log.display().to_string();
    let out = topiclog(["dump", "--json", "--print-data", &log]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = json_lines(&out);
    let batches = of_type(&lines, "batch");
    let field = |name: &str| batches.iter().map(|b| b[name].clone()).collect::<Vec<_>>();
    assert_eq!(field("base_offset"), [0, 1, 3]);
    assert_eq!(field("last_offset"), [0, 2, 3]);
    assert_eq!(field("partition_leader_epoch"), [1, 2, 2]);
    assert_eq!(field("crc"), [0x0318_a270_u32, 0xc85c_bd23, 0x2e0b_85b7]);
    assert_eq!(field("crc_valid"), [true, true, true]);
    assert_eq!(field("max_timestamp")[1], 1503229959700_i64);
    let records = of_type(&lines, "record");
    assert_eq!(records.len(), 4);
    assert_eq!(records[0]["data"]["value"]["utf8"], "123");
    assert_eq!(records[2]["timestamp"], 1503229959700_i64);
    assert_eq!(records[2]["value_size"], 0);
}

#[test]
fn a_sarama_batch_shows_its_producer_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let log = segment_file(dir.path(), "log");
    std::fs::write(&log, hex(SARAMA)).unwrap();
    let out = topiclog(["dump", "--print-data", &log.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("baseSequence: 0 lastSequence: 0 producerId: 0 producerEpoch: 0 "),
        "{text}"
    );
    assert!(
        text.contains("| offset: 0 timestamp: 1479847795005 keySize: 4 valueSize: 3 sequence: 0"),
        "{text}"
    );
    // The header key is UTF-8 (the format says so) but control characters: escaped, so the
    // record stays on one line; the value is not text: hex.
    assert!(text.contains(r"headers: [\u{8}\t\n=0x0b0c]"), "{text}");
    assert!(text.contains("key: 0x01020304 payload: 0x050607"), "{text}");
}

#[test]
fn a_preallocated_index_lists_its_entries_and_notes_the_zeros() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        segment_file(dir.path(), "log"),
        KAFKA_0_11_LOG
            .iter()
            .flat_map(|b| hex(b))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    // Kafka preallocates an active segment's index: one entry (offset 2 at the second batch,
    // position 71), then zeros.
    let mut index = vec![0, 0, 0, 2, 0, 0, 0, 71];
    index.resize(8 * 100, 0);
    std::fs::write(segment_file(dir.path(), "index"), &index).unwrap();
    let file = segment_file(dir.path(), "index").display().to_string();
    let out = topiclog(["dump", "--verify-index", "--json", &file]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = json_lines(&out);
    assert_eq!(of_type(&lines, "index_entry").len(), 1);
    let notes = of_type(&lines, "note");
    assert!(
        notes[0]["message"]
            .as_str()
            .unwrap()
            .contains("99 zero-filled"),
        "{notes:?}"
    );
    assert_eq!(of_type(&lines, "index_verified")[0]["mismatches"], 0);
}

/// A transaction's commit marker, as a Kafka broker writes it: a control batch (attributes:
/// transactional + control) whose one record's key is `ControlRecordType` (version 0, type 1 =
/// COMMIT) and value an `EndTransactionMarker` (version 0, coordinator epoch 5).
#[test]
fn control_batches_dump_their_transaction_markers() {
    let record = topiclog::Record::new(vec![0, 0, 0, 0, 0, 5]).with_key(vec![0, 0, 0, 1]);
    let batch = topiclog::segment::RecordBatch::build(&[record], 0, 1_000).unwrap();
    let mut bytes = batch.as_bytes().to_vec();
    // Attributes (bytes 21-22): bit 4 transactional, bit 5 control; then the CRC-32C (bytes
    // 17-20) over everything from the attributes on.
    bytes[22] |= 0b0011_0000;
    let crc = topiclog::internals::format::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    let dir = tempfile::tempdir().unwrap();
    let log = segment_file(dir.path(), "log");
    std::fs::write(&log, &bytes).unwrap();
    let out = topiclog(["dump", "--deep", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("isTransactional: true isControl: true"),
        "{text}"
    );
    assert!(
        text.contains("| offset: 0 ") && text.contains("endTxnMarker: COMMIT coordinatorEpoch: 5"),
        "{text}"
    );
    let out = topiclog(["dump", "--deep", "--json", log.to_str().unwrap()]);
    let lines = json_lines(&out);
    let records = of_type(&lines, "record");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["control"]["marker"], "COMMIT");
    assert_eq!(records[0]["control"]["coordinator_epoch"], 5);
}
