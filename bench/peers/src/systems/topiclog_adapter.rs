//! `topiclog` (path dependency on the project root):
//! a Kafka-style log of topics and partitions. The peers are single logs, so
//! the adapter uses its storage layer directly: one `topiclog::Partition` (one
//! directory of segments: `.log` + sparse `.index` + `.timeindex`), default
//! `LogConfig` (1 GiB segments, preallocated sparse in growing steps from 256 KiB,
//! an offset-index entry every 4 KiB, CRC-32C per batch) except `durability` and
//! `write_buffer_bytes`.
//!
//! Mapping onto the harness:
//! - appends: `Partition::append_builder(&mut BatchBuilder)`, one call per harness batch, which
//!   is stored as one record batch (one CRC-32C). The builder encodes each record into the batch
//!   buffer as it is pushed (`BatchBuilder::push(&[u8])`: the payload is copied once, nothing is
//!   allocated per record); records have no key and no timestamp (the batch gets the partition
//!   clock's time). The partition is opened with `write_buffer_bytes = 1 MiB` (topiclog's write
//!   coalescing, off by default): batches are gathered in memory and written with one `pwrite`
//!   per MiB, or before any read, sync, roll or close;
//! - durability: `Buffered` opens with `Durability::None` (appends never sync)
//!   and `flush_durable` calls `Partition::flush()`, which writes out the
//!   buffer and fdatasyncs the active segment: nothing else (the recovery point
//!   is recorded in the background, as in Kafka).
//!   `PerBatch` opens with `Durability::Always`: `append_builder` returns only
//!   after an fdatasync that covers the batch (topiclog's group commit; with one
//!   writer, one fdatasync per batch), so `flush_durable` has nothing to do;
//! - reads: `Partition::read_lazy(offset, max_bytes)` returns whole batches
//!   starting with the one that holds `offset` (zero-copy slices of the
//!   segment's shared mmap), each CRC-verified at least once per process (a
//!   segment remembers the batches it verified; a reopened log verifies again,
//!   so every W5 scan checks every CRC); `LazyBatches::iter()` yields borrowed
//!   `RecordRef`s, parsing and checking each record once (framing damage is an
//!   `Err`, which the adapter turns into a panic), and steps over the records
//!   below `offset` by their length fields. Scans ask for 256 KiB (as
//!   rawfile/commitlog), point reads for `max_bytes = 1` (exactly the one batch
//!   holding the offset, as topiclog's own benches do);
//! - reopen (W5) = `Partition::open_with` after the clean close that the drop
//!   of the previous handle did (`Partition::close`: sync, write indexes, trim
//!   the preallocated tail, clean-shutdown marker): it loads the offset index
//!   and reads only the active segment's tail after the last index entry
//!   (after a crash, with no clean-shutdown marker, open would instead rescan
//!   and CRC-check the whole active segment: all of a W1 log);
//! - W7: `Partition` is `Clone + Send + Sync`; the 8 threads share one handle
//!   opened with `Durability::Always` and call `Partition::append_builder` with a
//!   one-record `BatchBuilder` of their own: appends take the partition's append
//!   lock only to buffer the batch, then wait for a sync outside it; concurrent
//!   waiters share one fdatasync (the first waiter writes the buffer out and
//!   syncs for everyone queued behind it, after waiting up to half a sync for as
//!   many appends as the last sync carried). The offsets are topiclog's; the
//!   adapter prints appends per fdatasync (`Partition::sync_count`) to stderr.
//!
//! On drop the adapter calls `Partition::close()` (untimed in every workload),
//! so errors surface instead of being swallowed by topiclog's own Drop.

use std::path::Path;

use std::cell::RefCell;

use topiclog::{BatchBuilder, Durability as TlDurability, LogConfig, Partition};

use crate::log::{ConcurrentAppend, Durability, LogUnderTest};
use crate::systems::rawfile::SCAN_BYTES;

fn open_partition(dir: &Path, durability: TlDurability) -> Partition {
    // Write coalescing on (1 MiB), as a user appending many small batches would set it.
    let wb = std::env::var("TL_WBUF").ok().and_then(|v| v.parse().ok()).unwrap_or(1 << 20);
    let config = LogConfig { durability, write_buffer_bytes: wb, ..LogConfig::default() };
    Partition::open_with(dir, config).unwrap_or_else(|e| panic!("topiclog: open {}: {e}", dir.display()))
}

fn close(log: &Partition) {
    if let Err(e) = log.close() {
        if !std::thread::panicking() {
            panic!("topiclog: close: {e}");
        }
    }
}

pub struct TopicLog {
    log: Partition,
    durability: Durability,
    /// The batch being built: reused, so appends allocate nothing once warm.
    batch: BatchBuilder,
}

impl Drop for TopicLog {
    fn drop(&mut self) {
        close(&self.log);
    }
}

impl LogUnderTest for TopicLog {
    const NAME: &'static str = "topiclog";
    const NOTES: &'static str = "topiclog (path dep on the project root) storage layer: one Partition, default \
        LogConfig (1 GiB segments, preallocated sparse in growing steps from 256 KiB, offset index every 4 KiB, \
        CRC-32C per batch) except durability and write_buffer_bytes = 1 MiB (write coalescing, off by default). \
        Appends: append_builder(&mut BatchBuilder) per harness batch = one stored batch; BatchBuilder::push(&[u8]) \
        encodes each record into the batch buffer (payload copied once, no allocation per record); batches wait in \
        the 1 MiB write buffer and go to the file with one pwrite per MiB (readers see them at once). Buffered: \
        Durability::None, final flush = Partition::flush() (write out the buffer + one fdatasync of the segment; the \
        recovery point is recorded in the background, as in Kafka). Durable: Durability::Always, append_builder \
        returns after fdatasync, flush_durable does nothing. Reads: read_lazy(offset, 256 KiB) for scans, read_lazy(offset, 1) \
        for point reads: whole batches from the segment's mmap, each CRC-verified at least once per process (the \
        segment remembers verified batches; a reopened log verifies again, so every W5 scan checks every CRC); \
        LazyBatches::iter() yields borrowed RecordRefs, parsing and checking each record once, stepping over the \
        records below the offset by their length fields. Reopen = open after the \
        clean close done by dropping the previous handle (loads the offset index, reads the tail after its last \
        entry; no full rescan; after a crash, open would rescan and CRC-check what follows the last durable index entry below the recovery point). W7: one Partition (Durability::Always) shared by the threads without a lock, \
        append_builder of a one-record BatchBuilder (one per thread) each; concurrent appends share fdatasyncs \
        (topiclog's group commit, whose leader waits, up to half a sync and 200 µs, for every durable append under way); the \
        adapter prints appends per fdatasync (Partition::sync_count) to stderr; offsets are topiclog's.";

    fn open(dir: &Path, durability: Durability) -> Self {
        let tl = match durability {
            Durability::Buffered => TlDurability::None,
            Durability::PerBatch => TlDurability::Always,
        };
        let log = open_partition(dir, tl);
        let batch = log.batch_builder();
        TopicLog { log, durability, batch }
    }

    fn append_batch(&mut self, records: &[&[u8]]) -> u64 {
        for r in records {
            self.batch.push(r);
        }
        let info = self.log.append_builder(&mut self.batch).expect("topiclog: append_builder");
        assert_eq!(info.last_offset + 1 - info.base_offset, records.len() as u64, "topiclog: batch offsets");
        info.base_offset
    }

    fn flush_durable(&mut self) {
        match self.durability {
            // Every append_batch under Durability::Always returned after its fdatasync.
            Durability::PerBatch => {}
            Durability::Buffered => self.log.flush().expect("topiclog: flush"),
        }
    }

    fn read_from(&mut self, offset: u64, max_records: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        if offset >= self.log.end_offset() || max_records == 0 {
            return 0;
        }
        let max_bytes = if max_records == 1 { 1 } else { SCAN_BYTES };
        let batches = self.log.read_lazy(offset, max_bytes).expect("topiclog: read");
        let mut n = 0;
        for r in batches.iter().take(max_records) {
            let r = r.expect("topiclog: damaged record");
            if n == 0 {
                // A point read must deliver exactly the record at `offset`.
                assert_eq!(r.offset(), offset, "topiclog: read returned the wrong first record");
            } else {
                debug_assert_eq!(r.offset(), offset + n as u64);
            }
            f(r.value().expect("topiclog: record without a value"));
            n += 1;
        }
        assert!(n > 0, "topiclog: empty read at {offset} below the end offset");
        n
    }

    fn len(&self) -> u64 {
        self.log.end_offset()
    }

    fn open_concurrent(dir: &Path) -> Option<Box<dyn ConcurrentAppend>> {
        Some(Box::new(Shared { log: open_partition(dir, TlDurability::Always) }))
    }
}

/// W7 handle: one `Partition` shared by the writer threads (`&self` API).
struct Shared {
    log: Partition,
}

impl ConcurrentAppend for Shared {
    fn append_durable(&self, record: &[u8]) -> u64 {
        thread_local! {
            static BATCH: RefCell<Option<BatchBuilder>> = const { RefCell::new(None) };
        }
        BATCH.with(|b| {
            let mut b = b.borrow_mut();
            let batch = b.get_or_insert_with(|| self.log.batch_builder());
            batch.push(record);
            self.log.append_builder(batch).expect("topiclog: append_builder").base_offset
        })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // How many appends each group commit carried (the W7 limit is the writer count).
        let (appends, syncs) = (self.log.end_offset(), self.log.sync_count());
        if syncs > 0 {
            eprintln!(
                "topiclog W7: {appends} durable appends in {syncs} fdatasyncs: {:.2} appends per fdatasync",
                appends as f64 / syncs as f64
            );
        }
        close(&self.log);
    }
}
